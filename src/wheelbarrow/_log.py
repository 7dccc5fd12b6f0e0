"""The one output sink of the library.

Library code never prints: it calls a :class:`Log`. The CLI gives it a rich
console on stderr (the nox helpers run the CLI, so theirs is the same); a
program that calls :func:`~wheelbarrow.execute` passes its own. Each pipeline stage runs
inside :meth:`Log.stage`, which announces it, times it and, on GitHub Actions,
folds its output in a ``::group::``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

Sink = Callable[[str], None]


#: The user:password of a URL: up to its first ``@`` with no ``/``, or, when a ``:`` follows the user
#: name, up to its last ``@`` (a password may hold an unencoded ``/``).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s@/:]*:[^\s@]*|[^/?#\s@]*)@")


def scrub(text: str) -> str:
    """``text`` (an exception's words, a lock's line, a log line) with the user:password of every URL in it
    removed."""
    return _USERINFO.sub(r"\1", text)


#: A terminal's escape sequences (CSI: colours, cursor moves; OSC: window titles, links), every other
#: control character but newline and tab (C0, DEL, and C1, which some terminals obey as ESC sequences),
#: and the invisible marks that reorder or hide text (bidirectional overrides and isolates).
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
    r"|[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _control(match: re.Match[str]) -> str:
    if match[0].startswith("\x1b") and len(match[0]) > 1:
        return ""
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` as any stream may show it: no URL's credentials (:func:`scrub`), no terminal escape
    sequence (a colour is dropped, any other control character shown as ``\\x0d``), and a file name that
    is not UTF-8 as ``caf\\udce9``. Every line wheelbarrow prints goes through it."""
    return _CONTROL.sub(_control, scrub(text)).encode("utf-8", "backslashreplace").decode("utf-8")


def _stderr(line: str) -> None:
    print(printable(line), file=sys.stderr, flush=True)


@dataclass
class Log:
    """Where progress goes. ``quiet`` keeps only warnings, notices and the stage lines."""

    sink: Sink = _stderr
    quiet: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def prefixed(self, prefix: str) -> Log:
        """The same sink with every line prefixed, for one of several parallel builds."""
        return Log(sink=lambda line: self.sink(f"[{prefix}] {line}"), quiet=self.quiet, timings=self.timings)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.sink(message)

    def notice(self, message: str) -> None:
        """A line shown in quiet mode too, as the stage lines are: which run, which target."""
        self.sink(message)

    def warning(self, message: str) -> None:
        self.sink(f"WARNING: {message}")

    def command(self, argv_text: str) -> None:
        self.info(f"$ {argv_text}")

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        folds = os.environ.get("GITHUB_ACTIONS") == "true"
        if folds:
            self.sink(f"::group::{name}")
        self.sink(f"==> {name}")
        start = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.timings[name] = elapsed
            if folds:
                self.sink("::endgroup::")
            self.sink(f"<== {name} ({elapsed:.1f} s)")
