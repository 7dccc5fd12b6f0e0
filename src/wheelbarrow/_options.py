"""How options are declared and parsed: one :class:`Option` per :class:`~wheelbarrow._config.Config`
field, and one parser per kind that turns a raw value (a string or a list of them, from any source) into
the field's type."""

from __future__ import annotations

import difflib
import os
import pwd
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name

from . import _shapes
from .errors import ConfigError

_BOOLS = {"true": "true", "1": "true", "yes": "true", "false": "false", "0": "false", "no": "false"}
Raw = str | tuple[str, ...]
Kind = Literal[
    "str",
    "choice",
    "list",
    "names",
    "packages",
    "argv",
    "bool",
    "int",
    "path",
    "file",
    "glibc",
    "image",
    "targets",
    "repository",
]

#: glibc of each Debian suite wheelbarrow can bootstrap; it bounds the wheels
#: that fit the runtime image.
DEBIAN_GLIBC = {"bullseye": "2.31", "bookworm": "2.36", "trixie": "2.41"}
DEBIAN_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
#: The architectures a target may name (as ``uname -m`` prints them), and the engine's platform for each.
PLATFORMS = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}
_TARGET = re.compile(r"cp3(\d{1,2})-([a-z0-9_]+)")


@dataclass(frozen=True)
class Option:
    key: str
    kind: Kind
    default: str | tuple[str, ...]
    help: str
    choices: tuple[str, ...] = ()
    flag: bool = False  # also a --flag of every command
    bounds: tuple[int, int] = (1, 65535)  # an int's range

    @property
    def env(self) -> str:
        return "WHEELBARROW_" + self.key.upper().replace("-", "_")

    @property
    def attribute(self) -> str:
        return self.key.replace("-", "_")


def opt(
    key: str,
    kind: Kind,
    default: str | tuple[str, ...],
    text: str,
    *,
    choices: tuple[str, ...] = (),
    flag: bool = False,
    bounds: tuple[int, int] = (1, 65535),
) -> dict[str, Option]:
    """A field's metadata: the option it is read from."""
    return {"option": Option(key, kind, default, text, choices, flag, bounds)}


def did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def coerce(option: Option, value: object, source: str) -> Raw:
    """A value from one source, as a string or a tuple of strings; its type per the option's kind."""
    if option.kind == "bool":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        msg = f"{source}: '{option.key}' must be true or false, not {value!r}"
        raise ConfigError(msg, tip=f"Write it as {option.key} = true (or false).")
    if option.kind == "argv" and isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as err:
            msg = f"{source}: '{option.key}' is not a valid command line: {err}"
            raise ConfigError(msg, tip=f'Write it as a list: {option.key} = ["prog", "arg"].') from err
    if option.kind in ("list", "names", "packages", "argv", "targets"):
        if isinstance(value, str):
            return tuple(v for v in re.split(r"[,\s]+", value) if v)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        msg = f"{source}: '{option.key}' must be a list of strings, not {type(value).__name__}"
        raise ConfigError(msg, tip=f'Write it as {option.key} = ["a", "b"].')
    if option.kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        msg = f"{source}: '{option.key}' must be a string, not {type(value).__name__}"
        raise ConfigError(msg, tip=f'Write it as {option.key} = "...".')
    if "\0" in value:
        msg = f"{source}: '{option.key}' contains a NUL character"
        raise ConfigError(msg, tip=f"Fix the value of {option.key}.")
    if option.kind in ("path", "file") and not value.strip():
        msg = f"{source}: '{option.key}' is empty; an empty path would mean the project directory itself"
        raise ConfigError(msg, tip=f"Give {option.key} a value, or unset it to use the default.")
    if option.kind == "choice" and value not in option.choices:
        allowed = ", ".join(repr(c) for c in option.choices)
        msg = f"{source}: '{option.key}' is {value!r}, which is not one of {allowed}"
        raise ConfigError(msg, tip=f"Set {option.key} to one of {allowed}.")
    return value


@dataclass(frozen=True)
class Context:
    """What a parser may look at besides its own value: the project, the environment, the other raw values."""

    project_dir: Path
    name: str
    version: str | None
    environ: Mapping[str, str]
    raw: Mapping[str, Raw]

    def text(self, key: str) -> str:
        value = self.raw[key]
        return value if isinstance(value, str) else ""


def _int(option: Option, value: str, _ctx: Context) -> int | None:
    if not value:
        return (os.cpu_count() or 1) if option.key == "jobs" else None
    low, high = option.bounds
    if not re.fullmatch(r"[0-9]{1,6}", value) or not low <= int(value) <= high:
        msg = f"{option.key} is {value!r}, expected a whole number from {low} to {high}"
        raise ConfigError(msg, tip=f"Set {option.key} to a number from {low} to {high}, or leave it out.")
    return int(value)


def _path(_option: Option, value: str, ctx: Context) -> Path:
    if not value:  # only cache-dir has no default path: the user's cache
        return default_cache(ctx.environ)
    return Path(os.path.normpath(ctx.project_dir / Path(value).expanduser()))


def _file(option: Option, value: str, ctx: Context) -> Path | None:
    """A file the config names (the lock, the runtime Dockerfile): inside the project, symlinks resolved."""
    if not value:
        return None
    path = (ctx.project_dir / value).resolve()
    if path != ctx.project_dir and ctx.project_dir not in path.parents:
        msg = f"{option.key} is {value}, which is outside the project ({ctx.project_dir})"
        raise ConfigError(msg, tip=f"Name a file inside the project for {option.key}, relative to it.")
    return path


def _glibc(option: Option, value: str, ctx: Context) -> str:
    suite = ctx.text("debian-suite")
    found = re.search(r"manylinux_(\d+)_(\d+)", ctx.text("builder-base"))
    glibc = value or (DEBIAN_GLIBC[suite] if suite else f"{found[1]}.{found[2]}" if found else "2.28")
    if not re.fullmatch(r"2\.\d{1,3}", glibc):
        msg = f"{option.key} is {glibc!r}, expected a version such as '2.36'"
        raise ConfigError(msg, tip='Set glibc = "2.36" in [tool.wheelbarrow].')
    return glibc


def _image(option: Option, value: str, ctx: Context) -> str:
    """An image reference (it reaches the engine's command line: never an option); ``{python}`` in it is
    the target's CPython version (``python:{python}-slim``)."""
    if not value and ctx.version is None:
        return ""  # a dynamic version: the tag comes from the wheelhouse's manifest (see _image.tag_of)
    value = value or _shapes.image_name_for(ctx.name, ctx.version or "")  # only image-tag has no default
    value = value.replace("{python}", ctx.text("python"))
    tip = f'Set {option.key} to an image reference, e.g. "name:tag" (lower case).'
    return _shapes.image_reference(value, option.key, ConfigError, tip=tip)


def _repository(option: Option, value: str, _ctx: Context) -> str:
    """An OCI repository (``registry:5000/team/cache``): an image reference with neither tag nor digest."""
    if not value:
        return ""
    tip = f'Set {option.key} to a repository, e.g. "registry.example:5000/team/wheelbarrow-cache" (no tag).'
    _shapes.image_reference(value, option.key, ConfigError, tip=tip)
    if "@" in value or ":" in value.rsplit("/", 1)[-1]:
        msg = f"{option.key} is {value!r}: a repository, without a tag or digest (wheelbarrow tags each entry)"
        raise ConfigError(msg, tip=tip)
    return value


def parse_target(text: str, where: str = "targets") -> tuple[str, str]:
    """``cp313-aarch64`` -> ("3.13", "aarch64"), or a ConfigError that names the forms."""
    found = _TARGET.fullmatch(text)
    if not found or found[2] not in PLATFORMS:
        arches = ", ".join(PLATFORMS)
        msg = f"{where}: {text!r} is not a target; a target is cpXY-ARCH, ARCH one of {arches}"
        raise ConfigError(msg, tip='Write it as targets = ["cp311-x86_64", "cp313-x86_64", "cp311-aarch64"].')
    return f"3.{found[1]}", found[2]


def _targets(option: Option, value: tuple[str, ...], _ctx: Context) -> tuple[str, ...]:
    for text in value:
        parse_target(text, option.key)
    if len(set(value)) != len(value):
        msg = f"{option.key} names a target twice: {', '.join(value)}"
        raise ConfigError(msg, tip=f"List each target once in {option.key}.")
    return value


PARSERS: dict[Kind, Callable[[Option, Any, Context], Any]] = {
    "str": lambda _o, v, _c: v,
    "choice": lambda _o, v, _c: v,
    "list": lambda _o, v, _c: v,
    "argv": lambda _o, v, _c: v,
    "names": lambda _o, v, _c: tuple(canonicalize_name(n) for n in v),
    "packages": lambda o, v, _c: tuple(_shapes.system_package(p, o.key, ConfigError) for p in v),
    "bool": lambda _o, v, _c: v == "true",
    "int": _int,
    "path": _path,
    "file": _file,
    "glibc": _glibc,
    "image": _image,
    "targets": _targets,
    "repository": _repository,
}


def default_cache(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/wheelbarrow`` (an absolute one: the XDG spec ignores a relative value), else the
    user's home's ``.cache/wheelbarrow`` (from the password database when ``HOME`` is empty or relative)."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "wheelbarrow"
    home = environ.get("HOME", "")
    if not home or not Path(home).is_absolute():
        home = pwd.getpwuid(os.getuid()).pw_dir
    return Path(home) / ".cache" / "wheelbarrow"
