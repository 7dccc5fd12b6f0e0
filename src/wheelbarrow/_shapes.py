"""Untrusted strings are checked for their shape before they name a file, an image or a command.

Every value read from a lock, a manifest, a cache entry or the config passes
one of these checks where it is read: a sha256 is 64 hex digits, a file name
is one path component with no separator, a name and a version are what PEP 508
and PEP 440 allow. A failure raises the caller's error class (a lock's
:class:`~wheelbarrow.errors.LockError`, the config's
:class:`~wheelbarrow.errors.ConfigError` ...), so it ends as one ERROR line.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import WheelbarrowError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: One path component of a distribution file: letters, digits and ``._+-!~``, no separator, not ``.``/``..``.
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!~-]*")
#: An image reference: ``[host[:port]/]path[:tag][@digest]``, lower-case path components (Docker's grammar).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?:(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)

ErrorClass = type[WheelbarrowError]


def sha256(value: object, where: str, error: ErrorClass, tip: str = "Regenerate the lock.") -> str:
    text = value.lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not _SHA256.fullmatch(text):
        msg = f"{where}: {_show(value)} is not a sha256 (64 hexadecimal digits)"
        raise error(msg, tip=tip)
    return text


def filename(value: object, where: str, error: ErrorClass, tip: str = "Regenerate the lock.") -> str:
    if not isinstance(value, str) or not _FILE.fullmatch(value) or len(value) > 255:
        msg = f"{where}: {_show(value)} is not a distribution file name (one name, no '/' or '..')"
        raise error(msg, tip=tip)
    return value


def name(value: object, where: str, error: ErrorClass, tip: str = "Regenerate the lock.") -> NormalizedName:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or len(value) > 200:
        msg = f"{where}: {_show(value)} is not a package name"
        raise error(msg, tip=tip)
    return canonicalize_name(value)


def version(value: object, where: str, error: ErrorClass, tip: str = "Regenerate the lock.") -> str:
    msg = f"{where}: {_show(value)} is not a version (PEP 440)"
    if not isinstance(value, str) or len(value) > 100:
        raise error(msg, tip=tip)
    try:
        Version(value)
    except InvalidVersion as err:
        raise error(msg, tip=tip) from err
    return value


def requirement(value: object, where: str, error: ErrorClass, tip: str) -> str:
    """A PEP 508 requirement by name (no direct URL or path), normalised: it can never read as an option."""
    try:
        parsed = Requirement(value) if isinstance(value, str) and len(value) <= 500 else None
    except InvalidRequirement:
        parsed = None
    if parsed is None or parsed.url or not _NAME.fullmatch(parsed.name):
        msg = f"{where}: {_show(value)} is not a requirement by name (no options, URLs or paths)"
        raise error(msg, tip=tip)
    return str(parsed)


#: A system package name, with an optional version or architecture (``libpq-dev``, ``libpq5=15.8-0``,
#: ``libssl3:amd64``, ``postgresql-devel``): it becomes one word of a package manager's command line.
_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*(?:[:=][A-Za-z0-9.+_:~-]+)?")


def system_package(value: object, where: str, error: ErrorClass) -> str:
    if not isinstance(value, str) or not _PACKAGE.fullmatch(value) or len(value) > 200:
        msg = f"{where}: {_show(value)} is not a system package name (never an option, a path or a shell word)"
        raise error(msg, tip=f"Name packages only in {where}, e.g. libpq-dev or libpq5=15.8-0+deb12u1.")
    return value


def image_reference(value: str, where: str, error: ErrorClass, tip: str) -> str:
    if not _REFERENCE.fullmatch(value) or len(value) > 255:
        msg = f"{where}: {_show(value)} is not a valid image reference (lower-case name[:tag])"
        raise error(msg, tip=tip)
    return value


def image_name_for(project: str, project_version: str) -> str:
    """A valid image reference from a project's name and version: ``TinyApp`` 1.0+local -> ``tinyapp:1.0-local``."""
    repository = re.sub(r"[^a-z0-9]+", "-", project.lower()).strip("-") or "app"
    tag = re.sub(r"[^\w.-]", "-", project_version)[:128].lstrip(".-") or "latest"
    return f"{repository}:{tag}"


def read_file(path: Path, error: ErrorClass, tip: str, limit: int = 64 << 20) -> bytes:
    """The bytes of a regular file (a fifo, a device or a directory is refused, never waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as err:
        msg = f"{path} cannot be read: {err.strerror}"
        raise error(msg, tip=tip) from err
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            msg = f"{path} is not a regular file of at most {limit >> 20} MB"
            raise error(msg, tip=tip)
        return stream.read()


def toml(data: bytes, where: str, error: ErrorClass, tip: str) -> dict[str, Any]:
    """A TOML document from untrusted bytes: UTF-8 (a BOM allowed), no traceback for any input."""
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, RecursionError) as err:
        msg = f"{where} is not valid TOML (UTF-8): {str(err)[:200]}"
        raise error(msg, tip=tip) from err


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
