"""Every host command goes through :func:`run`.

It finds the executable (or raises a clear :class:`ToolMissingError`), echoes
the command shell-quoted, captures its output and, on failure, raises
:class:`CommandFailed` carrying that output so the caller can turn it into an
actionable :class:`~wheelbarrow.errors.WheelbarrowError`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from ._log import Log
from .errors import ToolMissingError

P = ParamSpec("P")
R = TypeVar("R")
#: Seconds an interrupted child gets to clean up before it is killed.
STOP_GRACE = 20


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    output: str

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


class CommandFailed(Exception):  # noqa: N818 - not a user-facing error; callers translate it
    """A command exited non-zero. Callers translate it into a WheelbarrowError."""

    def __init__(self, result: Result) -> None:
        super().__init__(f"{shlex.join(result.argv)} exited with {result.returncode}")
        self.result = result


def which(tool: str, *, hint: str = "") -> str:
    """Find ``tool`` next to the running interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / tool
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(tool)
    if found is None:
        msg = f"'{tool}' was not found next to {sys.executable} or on PATH"
        raise ToolMissingError(msg, tip=hint or f"Install {tool} and run again.")
    return found


_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


class Cancelled(Exception):  # noqa: N818 - never shown: the error that cancelled the work is
    """A command was refused, or stopped, because the work it belongs to was cancelled (:class:`Cancel`)."""


class Cancel:
    """Cancellation of the commands of one thread's work (a stage that runs beside others): once
    :meth:`cancel` is called, its running commands are interrupted as by Ctrl-C and :func:`run` refuses to
    start another in that thread. The thread takes it up with :meth:`applies`."""

    _current = threading.local()

    def __init__(self) -> None:
        self.event = threading.Event()
        self.live: set[subprocess.Popen[bytes]] = set()
        self.since: float | None = None  # when it was cancelled (time.monotonic)

    @contextlib.contextmanager
    def applies(self) -> Iterator[None]:
        Cancel._current.token = self
        try:
            yield
        finally:
            Cancel._current.token = None

    @staticmethod
    def current() -> Cancel | None:
        token: Cancel | None = getattr(Cancel._current, "token", None)
        return token

    def cancel(self) -> None:
        if self.since is None:
            self.since = time.monotonic()
        self.event.set()
        with _LIVE_LOCK:
            live = list(self.live)
        for proc in live:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)

    @staticmethod
    def carried(fn: Callable[P, R]) -> Callable[P, R]:
        """``fn``, run in another thread under the cancel of the thread that made it here (a stage's
        builds or downloads, in workers of their own, are cancelled with it)."""
        token = Cancel.current()
        if token is None:
            return fn

        @functools.wraps(fn)
        def under(*args: P.args, **kwargs: P.kwargs) -> R:
            with token.applies():
                return fn(*args, **kwargs)

        return under

    def kill(self) -> None:
        """What is still running after :meth:`cancel` and a grace: killed."""
        with _LIVE_LOCK:
            live = list(self.live)
        for proc in live:
            if proc.poll() is None:
                proc.kill()


#: Set once the run is interrupted: what interrupted children print as they die is kept, not shown (so too
#: for the children of cancelled work, :class:`Cancel`).
_STOPPING = threading.Event()


def stop_all() -> None:
    """Interrupt every command still running (those of build threads, on Ctrl-C in the main thread)."""
    _STOPPING.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask a child to stop as Ctrl-C would (so it can clean up), then insist."""
    _STOPPING.set()
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(
    argv: Sequence[str | os.PathLike[str]],
    log: Log,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    check: bool = True,
    stream: bool = False,
    hint: str = "",
) -> Result:
    """Run one host command.

    ``stream`` shows the output live (long steps such as compiles) while still
    capturing it, so a failure can replay its tail.
    """
    token = Cancel.current()
    if token is not None and token.event.is_set():
        raise Cancelled(f"not started, its work was cancelled: {shlex.join(os.fspath(a) for a in argv)}")
    args = [os.fspath(a) for a in argv]
    args[0] = which(args[0], hint=hint) if os.sep not in args[0] else args[0]
    log.command(shlex.join(args))
    full_env = {**os.environ, **env} if env is not None else None
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
        )
    except FileNotFoundError as err:
        msg = f"'{args[0]}' could not be started: {err.strerror}"
        raise ToolMissingError(msg, tip=hint or f"Install {args[0]} and run again.") from err
    chunks: list[str] = []
    with _LIVE_LOCK:
        _LIVE.add(proc)
        if token is not None:
            token.live.add(proc)
    if token is not None and token.event.is_set():  # cancelled while it started
        proc.send_signal(signal.SIGINT)
    try:
        assert proc.stdout is not None
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            chunks.append(line)
            if stream and not _STOPPING.is_set() and not (token is not None and token.event.is_set()):
                log.info("    " + line.rstrip("\r\n").rsplit("\r", 1)[-1])  # a progress line: what it ends as
        returncode = proc.wait()
    except BaseException:
        _stop(proc)  # interrupted (Ctrl-C): the child must not outlive us, nor leave its containers
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
            if token is not None:
                token.live.discard(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    result = Result(tuple(args), returncode, "".join(chunks))
    if token is not None and token.event.is_set():
        raise Cancelled(f"stopped, its work was cancelled: {shlex.join(args)}")
    if check and returncode != 0:
        raise CommandFailed(result)
    return result
