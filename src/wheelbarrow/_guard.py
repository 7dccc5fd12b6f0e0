"""Nothing lost, nothing left behind: what wheelbarrow may replace, and who is still running.

Two mechanisms, used by every stage:

* **Ownership.** A directory wheelbarrow creates carries its marker file
  (:data:`MARKER`, as ``CACHEDIR.TAG`` marks a cache). :func:`check_output`
  refuses to replace a directory that is not wheelbarrow's (no marker, and not
  empty), and, marker or not, ``/``, ``$HOME``, the project, its ancestors, the
  cache, and any directory that holds a ``pyproject.toml``, a lock or a
  ``.git``. The sweep removes only marked directories.
* **Liveness.** Every process that runs wheelbarrow holds a lease for its
  whole life: an ``flock`` on ``runs/<id>.lock`` in the user's private runtime
  directory (:func:`runtime_dir`). Its temporary folders and the containers and
  candidate images it makes are labelled with that id. A sweep removes what
  belongs to an id whose lock file it can see and take (the run is really
  dead, whatever its PID namespace); an id it cannot see (another user,
  container or machine on a shared engine or cache) only once it is older
  than :data:`LEASE_SECONDS`.

:func:`project_lock` serialises runs on one project.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._log import Log
from .errors import ConfigError, FileSystemError

OWNER_LABEL = "io.wheelbarrow.owner"
MARKER = ".wheelbarrow-owned"
#: What another run must be older than before a sweep that cannot check its lease removes its leftovers.
LEASE_SECONDS = 24 * 3600
#: File names that say a directory belongs to a project, not to wheelbarrow.
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg", ".git", "poetry.lock", "uv.lock", "pdm.lock", "Pipfile")
_LOCKISH = re.compile(r"^(pylock(\.[^/]+)?\.toml|requirements[^/]*\.txt)$")
_RUN_ID = re.compile(r"^[0-9a-f]{12}$")
#: Names of the folders wheelbarrow sweeps: ``wheelbarrow-<run>-...`` and staging ``.<name>-<run>-...``.
_SWEEPABLE = re.compile(r"^(?:wheelbarrow|\.[^/]+?)-([0-9a-f]{12})-")

_RUN = uuid.uuid4().hex[:12]
_LEASE: int | None = None
_LEASE_LOCK = threading.Lock()


def run_id() -> str:
    """This process's lease id; the lease is taken on first use and held until the process ends."""
    global _LEASE  # noqa: PLW0603 - one lease per process, held by an open descriptor
    with _LEASE_LOCK:  # build threads ask at once; only one of them takes the lease
        if _LEASE is None:
            path = runtime_dir() / "runs" / f"{_RUN}.lock"
            fd = _open_private(path)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _LEASE = fd
            # A run that ends normally takes its lease file with it (a killed one leaves it, unlocked:
            # that is how its leftovers are known to be a dead run's).
            atexit.register(path.unlink, missing_ok=True)
    return _RUN


def owner() -> str:
    return run_id()


def runtime_dir() -> Path:
    """A directory only this user can write: ``$XDG_RUNTIME_DIR/wheelbarrow`` or ``<tmp>/wheelbarrow-<uid>``."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    base = Path(xdg) if xdg and _private(Path(xdg)) else None
    path = base / "wheelbarrow" if base else Path(tempfile.gettempdir()) / f"wheelbarrow-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    if not _private(path):
        msg = f"{path} is not a private directory of this user (uid {os.geteuid()}): another user made it or opened it"
        tip = "Remove it (it holds only wheelbarrow's locks), or set XDG_RUNTIME_DIR to a directory of your own."
        raise FileSystemError(msg, tip=tip)
    return path


def _private(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077


def _open_private(path: Path) -> int:
    """Open (creating) a file in a private directory without following a symlink."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(mode=0o700)
    if not _private(path.parent):
        msg = f"{path.parent} is not a private directory of this user"
        raise FileSystemError(msg, tip=f"Remove {path.parent} and run again.")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        msg = f"cannot open the lock file {path}: {err.strerror}"
        raise FileSystemError(msg, tip=f"Remove {path} (a symlink or another user's file) and run again.") from err


def lease_state(run: str) -> bool | None:
    """True: that run is alive; False: it is dead; None: its lease is not visible from here."""
    if run == _RUN:
        return True
    if not _RUN_ID.match(run):
        return None
    path = runtime_dir() / "runs" / f"{run}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def is_dead(run: str, created: float | None) -> bool:
    """Whether a run's leftovers may go: its lease was taken and released, or it is older than the lease."""
    state = lease_state(run)
    if state is None:
        return created is not None and time.time() - created > LEASE_SECONDS
    return not state


def mark(path: Path, kind: str) -> None:
    (path / MARKER).write_text(f"wheelbarrow {kind}: made by wheelbarrow, replaced or removed by it\n", "utf-8")


def is_marked(path: Path, kind: str | None = None) -> bool:
    """Whether wheelbarrow made ``path`` (as a ``kind``: a wheelhouse is not a cache, nor a cache a dist/).

    The marker must be a regular file (not a symlink) that says so: an empty file someone touched is not it.
    """
    try:
        fd = os.open(path / MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = stream.read(200).decode("utf-8", "replace")
    return head.startswith(f"wheelbarrow {kind}:" if kind else "wheelbarrow ")


def tempdir(kind: str, parent: Path | None = None) -> Path:
    """A private, empty temporary directory that the sweep can attribute to this run.

    It lives inside a marked folder ``wheelbarrow-<run>-<kind>-...`` (so what the caller lists in it is
    only its own); :func:`remove_tempdir` removes both.
    """
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    outer = Path(tempfile.mkdtemp(prefix=f"wheelbarrow-{run_id()}-{kind}-", dir=parent))
    mark(outer, kind)
    inner = outer / kind
    inner.mkdir()
    return inner


def remove_tempdir(path: Path) -> None:
    """Remove a :func:`tempdir` and its marked folder."""
    outer = path.parent
    if _SWEEPABLE.match(outer.name) and is_marked(outer):
        shutil.rmtree(outer, ignore_errors=True)


@contextlib.contextmanager
def scratch(kind: str, parent: Path | None = None) -> Iterator[Path]:
    """:func:`tempdir`, removed when the block ends (and by the sweep if the process dies)."""
    path = tempdir(kind, parent)
    try:
        yield path
    finally:
        remove_tempdir(path)


def staging_dir(target: Path) -> Path:
    """A marked directory beside ``target`` (same file system, for an atomic swap), attributable to this run."""
    target.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{target.name}-{run_id()}-", dir=target.parent))
    mark(path, "staging")
    return path


def sweep_dirs(parent: Path, log: Log, pattern: str = "*") -> int:
    """Remove marked temporary directories in ``parent`` whose run is dead."""
    removed = 0
    if not parent.is_dir():
        return 0
    for path in parent.glob(pattern):
        found = _SWEEPABLE.match(path.name)
        if not found or path.is_symlink() or not path.is_dir() or not is_marked(path):
            continue
        if is_dead(found[1], path.stat().st_mtime):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        log.info(f"removed {removed} temporary folder(s) left in {parent} by runs that were killed")
    return removed


# --- what may be replaced -----------------------------------------------------------------------


def _holds_project_files(path: Path) -> str | None:
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return None
    found = [n for n in PROJECT_FILES if n in names] + sorted(n for n in names if _LOCKISH.match(n))
    return found[0] if found else None


def _is_within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def check_location(target: Path, what: str, key: str, protected: Iterable[Path] = ()) -> Path:
    """:func:`_check_location`; a path the system cannot look at (too long, a loop of links) is a ConfigError."""
    try:
        return _check_location(target, what, key, tuple(protected))
    except OSError as err:
        msg = f"{key} is {target}, which cannot be used: {err.strerror or err}"
        raise ConfigError(msg, tip=f"Point {key} at another directory.") from err


def _check_location(target: Path, what: str, key: str, protected: tuple[Path, ...]) -> Path:
    """The real path of ``target``, or a ConfigError if it can never be a ``what`` wheelbarrow replaces.

    Never ``/``, ``$HOME``, one of ``protected`` (the project, the cache ...) or a directory holding one,
    a directory inside a marked ``protected`` one (the cache), a directory that holds a project's files,
    or a file. A symlink is followed: its target is what gets replaced, and the link is kept.
    """
    real = Path(os.path.realpath(target))
    tip = f"Point {key} at a directory of its own (the default is fine), or remove it if it is an old output."
    home = Path(os.path.realpath(Path.home()))
    if real in (Path("/"), home):
        msg = f"{key} is {target}, which is {'/' if real == Path('/') else 'your home directory'}"
        raise ConfigError(msg, tip=tip)
    for place in protected:
        place_real = Path(os.path.realpath(place))
        if _is_within(place_real, real):
            msg = f"{key} is {target}, which is {place} or holds it: wheelbarrow would replace it as a whole"
            raise ConfigError(msg, tip=tip)
        if _is_within(real, place_real) and is_marked(place_real):
            msg = f"{key} is {target}, inside {place}, which wheelbarrow keeps for something else"
            raise ConfigError(msg, tip=tip)
    if real.is_dir():
        found = None if is_marked(real) else _holds_project_files(real)  # a wheelhouse holds requirements.txt
        if found:
            msg = f"{key} is {target}, which holds {found}: it is a project, not a {what}"
            raise ConfigError(msg, tip=tip)
    elif (real.exists() or real.is_symlink()) and not real.is_dir():  # (made a directory meanwhile: fine)
        msg = f"{key} is {target}, which is not a directory"
        raise ConfigError(msg, tip=tip)
    return real


def check_output(target: Path, what: str, key: str, protected: Iterable[Path] = ()) -> Path:
    """:func:`check_location`, and the directory is absent, empty or marked as wheelbarrow's."""
    real = check_location(target, what, key, protected)
    if real.is_dir() and not is_marked(real, what) and any(real.iterdir()):
        msg = f"{key} is {target}, which exists and is not a {what} wheelbarrow wrote (no {MARKER} file saying so)"
        tip = f"Point {key} at a new directory, or empty or remove {target} if it is an old {what}."
        raise ConfigError(msg, tip=tip)
    return real


def claim(root: Path, what: str, key: str, known: Iterable[str], protected: Iterable[Path] = ()) -> None:
    """Make ``root`` wheelbarrow's ``what`` (the cache): absent, empty or marked; or holding only ``known`` names."""
    real = check_location(root, what, key, protected)
    if is_marked(real, what):
        return
    names = {p.name for p in real.iterdir()} if real.is_dir() else set()
    strangers = sorted(n for n in names if n not in {*known, MARKER} and not _SWEEPABLE.match(n))
    if strangers:
        msg = f"{key} is {root}, which holds files that are not wheelbarrow's ({', '.join(strangers[:3])})"
        raise ConfigError(msg, tip=f"Point {key} at a directory of its own, e.g. ~/.cache/wheelbarrow.")
    real.mkdir(parents=True, exist_ok=True)
    if not is_marked(real, what):  # another thread or run may have claimed it meanwhile: both are fine
        mark(real, what)


def project_lock(wheelhouse: Path, log: Log) -> contextlib.AbstractContextManager[None]:
    """Hold the project's lock for the whole run; wait (saying so) while another run holds it."""
    name = hashlib.sha256(os.fsencode(os.path.realpath(wheelhouse))).hexdigest()[:24]
    return _held(name, log, "another wheelbarrow run on this project to finish")


def image_lock(image: str, log: Log) -> contextlib.AbstractContextManager[None]:
    """One maker per local image name: a run that would make ``image`` (a bootstrapped base, a derived
    builder, a builder) waits while another run of this user makes it, then finds it made. Two makers of
    one name would each tag their own image, and a tag that moves under a run is a base that moved."""
    name = "image-" + hashlib.sha256(image.encode()).hexdigest()[:24]
    return _held(name, log, f"another wheelbarrow run to finish making {image}")


@contextlib.contextmanager
def _held(name: str, log: Log, waiting_for: str) -> Iterator[None]:
    fd = _open_private(runtime_dir() / "locks" / f"{name}.lock")
    with os.fdopen(fd, "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            log.info(f"waiting for {waiting_for} ({holder})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, run {run_id()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
