"""The wheelhouse's ``manifest.json``, as types: written here and read here, nowhere else.

Every section is a frozen dataclass. :meth:`Manifest.to_json` writes it;
:meth:`Manifest.from_json` is the one reader: it checks every value's shape
and says which one is wrong. ``docs/manifest.schema.json`` describes the
same document (a test holds the two together).

Compatibility: ``manifest_version`` is ``"MAJOR.MINOR"``. A reader accepts
every manifest of its own major version: a minor version only adds keys,
which older readers ignore. A new major version (a key removed or its meaning
changed) is refused with a tip to rebuild. Version 1.0 was written as the
integer ``1`` and is read as ``"1.0"``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

from . import _shapes
from .errors import WheelhouseError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MANIFEST_VERSION = "1.3"
Origin = Literal["index", "built"]
D = TypeVar("D", bound="DataclassInstance")
TIP = "Rebuild the wheelhouse (wheelbarrow build); it was edited, or written by another wheelbarrow."


@dataclass(frozen=True)
class Project:
    name: str
    version: str


@dataclass(frozen=True)
class Target:
    python: str
    python_tag: str
    machine: str
    glibc: str


@dataclass(frozen=True)
class LockInfo:
    file: str
    kind: str
    sha256: str


@dataclass(frozen=True)
class RuntimeBase:
    image: str
    image_id: str
    repair_policy: str
    provides: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()  # runtime-packages installed into it (since 1.2)
    digest: str = ""  # the configured base as pulled, name@sha256:... ("" for a local image; since 1.3)


@dataclass(frozen=True)
class BuilderInfo:
    image: str
    image_id: str
    base: str
    system_packages: tuple[str, ...] = ()
    base_digest: str = ""  # the builder base as pulled ("" for a local or derived one; since 1.3)


@dataclass(frozen=True)
class FileRef:
    """A file and its sha256: an sdist a wheel was built from, a build requirement."""

    file: str
    sha256: str


@dataclass(frozen=True)
class WheelEntry:
    name: str
    version: str
    file: str
    sha256: str
    size: int
    origin: Origin
    platform_tag: str
    sdist: FileRef | None = None
    builder_image_id: str | None = None
    grafted_libraries: tuple[str, ...] = ()
    expected_from_base: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    project: Project
    target: Target
    lock: LockInfo
    runtime_base: RuntimeBase
    builder: BuilderInfo
    source_date_epoch: int
    build_requirements: tuple[FileRef, ...]
    wheels: tuple[WheelEntry, ...]
    manifest_version: str = MANIFEST_VERSION

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data = {"manifest_version": data.pop("manifest_version"), **data}
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as err:
            msg = f"the wheelhouse manifest is not JSON: {err}"
            raise WheelhouseError(msg, tip=TIP) from err
        if not isinstance(data, dict):
            msg = "the wheelhouse manifest is not a JSON object"
            raise WheelhouseError(msg, tip=TIP)
        version = str(data.get("manifest_version", ""))
        version = "1.0" if version == "1" else version
        major = MANIFEST_VERSION.split(".", maxsplit=1)[0]
        if not re.fullmatch(rf"{major}\.\d+", version):
            msg = f"manifest_version {data.get('manifest_version')!r} is not {major}.x"
            raise WheelhouseError(msg, tip="Rebuild the wheelhouse with this wheelbarrow.")
        manifest = _build(cls, {**data, "manifest_version": version}, "manifest")
        _check_shapes(manifest)
        return manifest


#: A wheel tag part (python, abi or platform tag), as a file name may hold it.
_TAG = re.compile(r"[a-z0-9_.]{1,200}")


#: The longest string a manifest may hold (a soname, a reference, a file name are far shorter).
_LONGEST = 1024


def _strings(value: object, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, tuple):
        for n, item in enumerate(value):
            yield from _strings(item, f"{where}[{n}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _strings(getattr(value, field.name), f"{where}.{field.name}" if where else field.name)


def _check_shapes(manifest: Manifest) -> None:
    """Every value that becomes a file name, an image tag or a time: checked here, where it is read. No
    string holds a control character (a manifest's words reach messages and a terminal) or is longer than
    any real value; the image references are references."""
    for where, text in _strings(manifest, ""):
        if len(text) > _LONGEST or re.search(r"[\x00-\x1f\x7f]", text):
            shown = text[:60].encode("unicode_escape").decode("ascii")
            msg = f"manifest: {where} is not a plain value ({len(text)} characters: {shown}...)"
            raise WheelhouseError(msg, tip=TIP)
    references = [("runtime_base.image", manifest.runtime_base.image), ("builder.image", manifest.builder.image)]
    references += [("builder.base", manifest.builder.base)]
    references += [
        ("runtime_base.digest", manifest.runtime_base.digest),
        ("builder.base_digest", manifest.builder.base_digest),
    ]
    for where, ref in references:
        if ref:
            _shapes.image_reference(ref, f"manifest: {where}", WheelhouseError, tip=TIP)
    _shapes.name(manifest.project.name, "manifest: project.name", WheelhouseError, tip=TIP)
    _shapes.version(manifest.project.version, "manifest: project.version", WheelhouseError, tip=TIP)
    tags = [("target.python_tag", manifest.target.python_tag)]
    tags += [(f"{w.file}: platform_tag", w.platform_tag) for w in manifest.wheels]
    for where, tag in tags:
        if not _TAG.fullmatch(tag):
            msg = f"manifest: {where} is {tag!r}, not a wheel tag"
            raise WheelhouseError(msg, tip=TIP)
    if not 0 <= manifest.source_date_epoch < 1 << 33:
        msg = f"manifest: source_date_epoch {manifest.source_date_epoch} is not a time wheelbarrow can stamp"
        raise WheelhouseError(msg, tip=TIP)
    for wheel in manifest.wheels:
        _shapes.filename(wheel.file, "manifest: wheels[].file", WheelhouseError, tip=TIP)
        _shapes.sha256(wheel.sha256, f"manifest: {wheel.file}", WheelhouseError, tip=TIP)
        _shapes.name(wheel.name, f"manifest: {wheel.file}: name", WheelhouseError, tip=TIP)
        _shapes.version(wheel.version, f"manifest: {wheel.file}: version", WheelhouseError, tip=TIP)


def _build(cls: type[D], data: object, where: str) -> D:
    """A dataclass from JSON data: each field of its declared type, unknown keys ignored (a newer minor)."""
    if not isinstance(data, dict):
        msg = f"{where} is not an object"
        raise WheelhouseError(msg, tip=TIP)
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in data:
            values[field.name] = _value(hints[field.name], data[field.name], f"{where}.{field.name}")
        elif field.default is dataclasses.MISSING:
            msg = f"{where} has no {field.name!r}"
            raise WheelhouseError(msg, tip=TIP)
    return cls(**values)


def _value(hint: object, value: object, where: str) -> object:  # noqa: PLR0911 - one case per kind of type
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        return _value(next(o for o in options if o is not type(None)), value, where)
    if origin is tuple:
        if not isinstance(value, list):
            msg = f"{where} is not a list"
            raise WheelhouseError(msg, tip=TIP)
        return tuple(_value(get_args(hint)[0], item, f"{where}[{n}]") for n, item in enumerate(value))
    if origin is Literal:
        if value not in get_args(hint):
            msg = f"{where} is {value!r}, not one of {get_args(hint)}"
            raise WheelhouseError(msg, tip=TIP)
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    msg = f"{where} is {type(value).__name__}, not {getattr(hint, '__name__', hint)}"
    raise WheelhouseError(msg, tip=TIP)
