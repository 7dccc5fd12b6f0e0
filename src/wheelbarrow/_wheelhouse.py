"""Stage 6, wheelhouse: exactly the runtime wheels, a hash lock, a manifest.

The new wheelhouse is assembled in a staging directory beside the old one and
swapped in with one atomic ``renameat2(RENAME_EXCHANGE)``: an interrupted or
failed run leaves the previous wheelhouse as it was.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ._cache import sha256_of
from ._guard import MARKER, check_output, mark, staging_dir
from ._manifest import FileRef, Manifest, Origin, WheelEntry
from .errors import WheelhouseError

README = """\
# wheelhouse

Written by `wheelbarrow build` (or `nox -s build_wheels`); replaced as a whole
on every successful run, never edited by hand.

- `*.whl`: every wheel the project needs at run time, and the project's own
  wheel. Wheels compiled from sdists were built in an offline builder
  container and repaired by auditwheel: they carry their native libraries in
  `<package>.libs/`.
- `requirements.txt`: each wheel pinned with the sha256 of the file here.
  Install with no index:
  `pip install --no-index --find-links wheelhouse --require-hashes -r wheelhouse/requirements.txt`
- `manifest.json`: for each wheel its origin (index or built), sha256, size,
  platform tag, the sdist and builder image it was built from, and the
  libraries auditwheel grafted in.
"""


def entry_for(
    path: Path,
    name: str,
    version: str,
    origin: Origin,
    platform_tag: str,
    *,
    sdist: FileRef | None = None,
    builder_image_id: str | None = None,
    grafted_libraries: tuple[str, ...] = (),
    expected_from_base: tuple[str, ...] = (),
) -> WheelEntry:
    """The manifest's entry of a wheel file (its sha256 and size read here)."""
    size = path.stat().st_size
    return WheelEntry(
        name, version, path.name, sha256_of(path), size, origin, platform_tag,
        sdist, builder_image_id, grafted_libraries, expected_from_base,
    )  # fmt: skip


def requirements_text(entries: Sequence[WheelEntry]) -> str:
    lines = [
        "# Written by wheelbarrow: exactly the wheels in this directory, pinned by sha256.",
        "# pip install --no-index --find-links wheelhouse --require-hashes -r wheelhouse/requirements.txt",
    ]
    lines += [
        f"{entry.name}=={entry.version} \\\n    --hash=sha256:{entry.sha256}"
        for entry in sorted(entries, key=lambda e: e.name)
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def staging(target: Path, what: str = "wheelhouse") -> Iterator[Path]:
    """A fresh, marked directory beside ``target``, removed unless it was swapped in."""
    stage = staging_dir(target)
    mark(stage, what)
    stage.chmod(0o755)  # mkdtemp makes it private; a wheelhouse is for others to read
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        Path(partial).chmod(0o644)  # mkstemp makes it private; outputs are for others to read
        Path(partial).replace(path)
    finally:
        Path(partial).unlink(missing_ok=True)


def fill(stage: Path, wheels: Sequence[tuple[Path, WheelEntry]], manifest: Manifest) -> None:
    for source, entry in wheels:
        shutil.copyfile(source, stage / entry.file)
        if sha256_of(stage / entry.file) != entry.sha256:
            msg = f"{entry.file} changed while it was copied into the wheelhouse"
            raise WheelhouseError(msg, tip="Run again; check the disk for errors.")
    write_atomic(stage / "requirements.txt", requirements_text([e for _, e in wheels]))
    write_atomic(stage / "manifest.json", manifest.to_json())
    write_atomic(stage / "README.md", README)


def _exchange(a: Path, b: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)  # the running process already has libc loaded
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(a))


def swap_in(stage: Path, wheelhouse: Path) -> None:
    """Make ``stage`` the wheelhouse in one atomic step; the old one ends up in ``stage``."""
    try:
        if wheelhouse.exists():
            _exchange(stage, wheelhouse)
        else:
            stage.rename(wheelhouse)
            stage.mkdir()  # the caller's cleanup expects it
    except OSError as err:
        msg = f"could not replace {wheelhouse}: {err}"
        raise WheelhouseError(msg, tip="Check that the directory is writable and on a local file system.") from err


@contextmanager
def replacing(target: Path, what: str, *, key: str, protected: Sequence[Path] = ()) -> Iterator[Path]:
    """A staging directory that becomes ``target`` in one atomic step when the block ends without error.

    Only a directory wheelbarrow may replace is replaced (:func:`~wheelbarrow._guard.check_output`: absent,
    empty or marked as wheelbarrow's, never the project, its ancestors or the cache); a symlink is written
    through. A failure to write (a full disk, permissions) is a WheelhouseError, and ``target`` keeps what
    it held.
    """
    real = check_output(target, what, key, protected)
    try:
        with staging(real, what) as stage:
            yield stage
            check_output(target, what, key, protected)  # still ours, now that the new one is ready
            swap_in(stage, real)
    except OSError as err:
        msg = f"could not write the new {what} beside {target}: {err.strerror or err}"
        tip = f"Free some space (or fix the permissions) there and run again; the previous {what} is untouched."
        raise WheelhouseError(msg, tip=tip) from err


def _unchanged(wheelhouse: Path, wheels: Sequence[tuple[Path, WheelEntry]], manifest: Manifest) -> bool:
    try:
        same_text = (wheelhouse / "manifest.json").read_text(encoding="utf-8") == manifest.to_json() and (
            wheelhouse / "requirements.txt"
        ).read_text(encoding="utf-8") == requirements_text([e for _, e in wheels])
    except OSError:
        return False
    present = {p.name for p in wheelhouse.iterdir()}
    expected = {e.file for _, e in wheels} | {"manifest.json", "requirements.txt", "README.md", MARKER}
    return same_text and present == expected and all(sha256_of(wheelhouse / e.file) == e.sha256 for _, e in wheels)


def publish(
    wheelhouse: Path, wheels: Sequence[tuple[Path, WheelEntry]], manifest: Manifest, protected: Sequence[Path] = ()
) -> bool:
    """Make ``wheelhouse`` hold exactly ``wheels``; False when it already did (nothing written)."""
    if _unchanged(wheelhouse, wheels, manifest):
        return False
    with replacing(wheelhouse, "wheelhouse", key="wheelhouse", protected=protected) as stage:
        fill(stage, wheels, manifest)
    return True


_PIN = re.compile(r"^(\S+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", re.MULTILINE)


def read_pins(text: str) -> dict[str, str]:
    """name -> sha256 of a wheelhouse's requirements.txt (as :func:`requirements_text` writes it)."""
    return {name: sha for name, _version, sha in _PIN.findall(text)}


def read_wheelhouse(wheelhouse: Path) -> tuple[Manifest, str]:
    """The manifest, after checking every wheel against requirements.txt and the manifest."""
    requirements = wheelhouse / "requirements.txt"
    manifest_path = wheelhouse / "manifest.json"
    if not requirements.is_file() or not manifest_path.is_file():
        msg = f"{wheelhouse} is not a wheelbarrow wheelhouse (no requirements.txt or manifest.json)"
        raise WheelhouseError(msg, tip="Build it first: nox -s build_wheels (or wheelbarrow build).")
    try:
        manifest_text, pins_text = manifest_path.read_text(encoding="utf-8"), requirements.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        msg = f"{wheelhouse}: its manifest.json or requirements.txt is not UTF-8 text: {err.reason}"
        raise WheelhouseError(msg, tip="Build it again: wheelbarrow build.") from err
    manifest = Manifest.from_json(manifest_text)
    pins = read_pins(pins_text)
    by_name = {w.name: w for w in manifest.wheels}
    if set(pins) != set(by_name):
        msg = f"requirements.txt pins {sorted(pins)} but the manifest lists {sorted(by_name)}"
        raise WheelhouseError(msg, tip="Rebuild the wheelhouse: it was edited by hand.")
    files = {p.name for p in wheelhouse.glob("*.whl")}
    extra = files - {w.file for w in manifest.wheels}
    if extra:
        msg = f"{wheelhouse} holds wheels no lock pins: {', '.join(sorted(extra))}"
        raise WheelhouseError(msg, tip="Remove them or rebuild the wheelhouse.")
    for name, entry in sorted(by_name.items()):
        path = wheelhouse / entry.file
        if not path.is_file():
            msg = f"{entry.file} is missing from {wheelhouse}"
            raise WheelhouseError(msg, tip="Rebuild the wheelhouse.")
        actual = sha256_of(path)
        if actual != pins[name] or actual != entry.sha256:
            msg = f"{entry.file} has sha256 {actual}, but the wheelhouse lock says {pins[name]}: it was changed"
            raise WheelhouseError(msg, tip="Do not edit wheels by hand; rebuild the wheelhouse and check its source.")
    return manifest, sha256_of(requirements)
