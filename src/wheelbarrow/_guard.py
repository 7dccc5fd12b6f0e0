"""Nothing lost, nothing left behind: one run per project at a time, and a sweep of what dead runs left.

* :func:`project_lock` serialises runs on the same project (an ``flock`` next to
  the wheelhouse): a second run waits, and says for whom.
* Every temporary directory is named ``wheelbarrow-<pid>-...`` (staging
  directories ``.<name>-<pid>-...``) and every container carries the label
  ``io.wheelbarrow.owner=<host>:<pid>``. :func:`sweep` removes those whose
  process is gone (a run that was killed with SIGKILL, or lost its machine),
  never those of a live run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._log import Log

OWNER_LABEL = "io.wheelbarrow.owner"
_PID = re.compile(r"^\.?(?:wheelbarrow|[\w.-]+?)-(\d+)-")


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_owner(value: str) -> bool:
    """True for ``host:pid`` of this host whose process is gone."""
    host, _, pid = value.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not alive(int(pid))


def tempdir(kind: str, parent: Path | None = None) -> Path:
    """A private temporary directory that :func:`sweep` can attribute to this process."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"wheelbarrow-{os.getpid()}-{kind}-", dir=parent))


@contextlib.contextmanager
def scratch(kind: str, parent: Path | None = None) -> Iterator[Path]:
    """:func:`tempdir`, removed when the block ends (and by :func:`sweep` if the process dies)."""
    path = tempdir(kind, parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def staging_dir(target: Path) -> Path:
    """A directory beside ``target`` (same file system, for an atomic swap), attributable to this process."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-{os.getpid()}-", dir=target.parent))


def sweep_dirs(parent: Path, log: Log, pattern: str = "*") -> int:
    """Remove directories in ``parent`` named with the pid of a process that is gone."""
    removed = 0
    if not parent.is_dir():
        return 0
    for path in parent.glob(pattern):
        found = _PID.match(path.name)
        if found and path.is_dir() and not alive(int(found[1])):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        log.info(f"removed {removed} temporary folder(s) left in {parent} by runs that were killed")
    return removed


@contextlib.contextmanager
def project_lock(wheelhouse: Path, log: Log) -> Iterator[None]:
    """Hold the project's lock for the whole run; wait (saying so) while another run holds it."""
    locks = Path(tempfile.gettempdir()) / "wheelbarrow-locks"  # outside the project: nothing left in it
    locks.mkdir(mode=0o1777, exist_ok=True)
    name = hashlib.sha256(str(wheelhouse.resolve()).encode()).hexdigest()[:24]
    with (locks / f"{name}.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            log.info(f"waiting for another wheelbarrow run on this project to finish ({holder})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
