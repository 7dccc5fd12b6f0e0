"""The requirements-file grammar of a hashed lock, as pip reads it.

``name==version --hash=sha256:...`` lines (``--hash sha256:...`` too), backslash
continuations and comments; ``-r``/``-c`` files are followed (inside the
project only); ``-e`` is refused, except a line that names the project itself
(``-e .``, ``.``: what ``uv export`` writes), which is skipped because
wheelbarrow builds the project anyway; index options are ignored and unknown
options refused. Every value is checked for its shape (:mod:`wheelbarrow._shapes`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from . import _shapes
from .errors import LockError, UnhashedRequirementError


@dataclass(frozen=True)
class LockedFile:
    filename: str
    sha256: str
    path: Path | None = None  # a local file named by pylock.toml's ``path``


@dataclass(frozen=True)
class LockedPackage:
    name: NormalizedName
    version: str
    hashes: tuple[str, ...]
    files: tuple[LockedFile, ...] = ()  # empty when the lock names no files

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def read_text(path: Path, what: str = "lock") -> str:
    """A lock's text: UTF-8 (a byte-order mark is allowed), else a LockError that says so."""
    tip = f"The {what} must be a regular file: point the 'lock' key at it."
    try:
        return _shapes.read_file(path, LockError, tip).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        msg = f"{path} is not UTF-8 text ({err.reason} at byte {err.start})"
        raise LockError(msg, tip=f"Save the {what} as UTF-8 (regenerate it with the tool that wrote it).") from err
    except IsADirectoryError as err:
        msg = f"{path} is a directory, not a {what} file"
        raise LockError(msg, tip="Point the 'lock' key at the lock file.") from err


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's requirements-file lines: comments dropped, backslash continuations joined."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).strip()
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            yield start, buffer.strip()
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


_COMMENT = re.compile(r"(^|\s+)#.*$")
#: Options a requirements file may carry that say how to reach an index, not what is locked.
_INDEX_OPTIONS = frozenset(
    {
        "-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links", "--trusted-host",
        "--pre", "--prefer-binary", "--only-binary", "--no-binary", "--require-hashes", "--use-feature",
    }
)  # fmt: skip
_NESTED = {"-r": "requirement", "--requirement": "requirement", "-c": "constraint", "--constraint": "constraint"}
_EDITABLE = ("-e", "--editable")
_MAX_DEPTH = 10


def _split_options(line: str) -> tuple[str, list[str]]:
    """pip's rule: the requirement is every token before the first one that starts with '-'."""
    tokens = line.split()
    cut = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
    return " ".join(tokens[:cut]), tokens[cut:]


def _option_value(tokens: list[str], index: int) -> tuple[str, str, int]:
    """``--opt=value`` or ``--opt value`` (and ``-rfile``): the option, its value and the next index."""
    token = tokens[index]
    if token.startswith("--") and "=" in token:
        option, _, value = token.partition("=")
        return option, value, index + 1
    if not token.startswith("--") and len(token) > 2:
        return token[:2], token[2:], index + 1
    return token, tokens[index + 1] if index + 1 < len(tokens) else "", index + 2


def _hashes(tokens: list[str], where: str) -> tuple[str, ...]:
    hashes: list[str] = []
    index = 0
    while index < len(tokens):
        option, value, index = _option_value(tokens, index)
        if option != "--hash":
            msg = f"{where}: {option} cannot follow a requirement (only --hash can)"
            raise LockError(msg, tip="Regenerate the requirements file from the lock.")
        algorithm, _, digest = value.partition(":")
        if algorithm == "sha256":
            hashes.append(_shapes.sha256(digest, where, LockError))
    return tuple(hashes)


def parse_requirements(
    text: str, env: Mapping[str, str], source: Path, *, root: Path | None = None
) -> tuple[LockedPackage, ...]:
    """Parse pinned, hashed requirements; keep those whose marker holds for ``env``.

    ``-r``/``-c`` files are followed (relative to the file that names them, never outside ``root``, the
    project); ``-e`` is refused: an editable requirement cannot be locked by hash.
    """
    root = (root or source.parent).resolve()
    constraints: dict[str, tuple[str, str]] = {}
    packages = _parse_requirement_file(text, env, source, root, constraints, (source.resolve(),))
    for package in packages:
        pinned = constraints.get(package.name)
        if pinned and pinned[0] != package.version:
            msg = f"{pinned[1]}: constrains {package.name} to {pinned[0]}, but {package.requirement} is locked"
            raise LockError(msg, tip="Regenerate the requirements and their constraints together.")
    return packages


def _parse_requirement_file(
    text: str,
    env: Mapping[str, str],
    source: Path,
    root: Path,
    constraints: dict[str, tuple[str, str]],
    chain: tuple[Path, ...],
    *,
    constraint: bool = False,
) -> tuple[LockedPackage, ...]:
    packages: list[LockedPackage] = []
    for number, line in _logical_lines(text):
        where = f"{source}:{number}"
        spec, options = _split_options(line)
        if _names_directory(spec, source, root):
            continue  # the project itself (uv export writes "." or "-e ."): wheelbarrow builds it
        if not spec:
            option, value, _ = _option_value(options, 0)
            if option in _EDITABLE and _names_directory(value, source, root):
                continue
            if option in _EDITABLE:
                msg = f"{where}: {line!r} is an editable requirement, which cannot be locked by hash"
                tip = "Lock a released version instead (uv export --no-editable, pip-compile without -e)."
                raise LockError(msg, tip=tip)
            if option in _NESTED:
                nested = _nested_file(value, where, source, root, chain)
                is_constraint = constraint or _NESTED[option] == "constraint"
                found = _parse_requirement_file(
                    read_text(nested), env, nested, root, constraints, (*chain, nested), constraint=is_constraint
                )
                if not is_constraint:
                    packages += found
                else:
                    constraints.update({p.name: (p.version, where) for p in found})
                continue
            if option in _INDEX_OPTIONS:
                continue  # how to reach an index says nothing about what is locked
            msg = f"{where}: unknown option {option!r} in a requirements lock"
            raise LockError(msg, tip="Remove it, or regenerate the file (pip-compile, uv export, poetry export).")
        try:
            req = Requirement(spec)
        except InvalidRequirement as err:
            msg = f"{where}: cannot parse requirement {spec!r}: {err}"
            raise LockError(msg, tip="Regenerate the requirements file from the lock.") from err
        try:
            wanted = req.marker is None or req.marker.evaluate(dict(env))
        except (UndefinedComparison, UndefinedEnvironmentName) as err:
            msg = f"{where}: its marker cannot be evaluated: {req.marker} ({err})"
            raise LockError(msg, tip="Regenerate the requirements file from the lock.") from err
        if not wanted:
            continue
        pins = [s for s in req.specifier if s.operator in ("==", "===")]
        if len(pins) != 1 or "*" in pins[0].version or req.url:
            msg = f"{where}: {spec!r} is not pinned to one version with =="
            raise LockError(msg, tip="Lock every requirement to an exact version (poetry export or pip-compile).")
        version = _shapes.version(pins[0].version, where, LockError)
        hashes = _hashes(options, where)
        if not hashes and not constraint:  # a constraints file pins versions; hashes are the lock's business
            msg = f"{where}: {req.name}=={version} has no --hash=sha256:..."
            raise UnhashedRequirementError(msg, tip="Regenerate the file with hashes (pip-compile --generate-hashes).")
        packages.append(LockedPackage(canonicalize_name(req.name), version, hashes))
    return tuple(packages)


def _nested_file(value: str, where: str, source: Path, root: Path, chain: tuple[Path, ...]) -> Path:
    """The file a ``-r``/``-c`` line names: inside the project, not a URL, not a cycle, not too deep."""
    if not value or "://" in value:
        msg = f"{where}: {value!r} is not a file in the project"
        raise LockError(msg, tip="Name a requirements file inside the project (a relative path).")
    nested = (source.parent / value).resolve()
    if root not in nested.parents:
        msg = f"{where}: {value!r} is outside the project ({root})"
        raise LockError(msg, tip="A lock may only include files inside the project.")
    if nested in chain or len(chain) > _MAX_DEPTH:
        msg = f"{where}: {value!r} includes itself (through {' -> '.join(p.name for p in chain)})"
        raise LockError(msg, tip="Remove the loop of -r/-c lines.")
    if not nested.is_file():
        msg = f"{where}: {value!r} does not exist"
        raise LockError(msg, tip="Create it, or remove the line.")
    return nested


def _names_directory(spec: str, source: Path, root: Path) -> bool:
    """Whether a requirement is a path to the project's own directory (``.``, ``./``, ``file:///...``)."""
    text = spec.removeprefix("file://")
    if not text or not (text.startswith((".", "/")) or text == root.name):
        return False
    return (source.parent / text).resolve() == root
