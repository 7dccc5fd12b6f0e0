"""How the CLI shows a run: rich progress on a terminal, a summary table, or JSON for CI."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.table import Table

from ._log import Log, printable, scrub


class ConsoleLog(Log):
    """The CLI's sink: plain lines, and in quiet mode on a terminal a spinner per stage."""

    def __init__(self, console: Console, *, quiet: bool) -> None:
        super().__init__(
            sink=lambda line: console.print(printable(line), markup=False, highlight=False, soft_wrap=True),
            quiet=quiet,
        )
        self.console = console
        self._spinner = threading.Lock()  # a console shows one live display: one spinner, of the first stage

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """The stage, with a spinner in quiet mode on a terminal; of stages that run at once, the first."""
        spinner = self.quiet and self.console.is_terminal and self._spinner.acquire(blocking=False)
        try:
            with self.console.status(f"{name} ...") if spinner else contextlib.nullcontext(), super().stage(name):
                yield
        finally:
            if spinner:
                self._spinner.release()


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def summary_table(rows: list[dict[str, Any]], timings: dict[str, float], wall: float | None = None) -> Table:
    """The wheelhouse, captioned with the run's time and each stage's; ``wall``: the run's own time, less
    than the stages' sum when some ran at once."""
    table = Table(title="wheelhouse", title_justify="left")
    for column in ("wheel", "origin", "platform", "size", "grafted libraries"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        names = [g.split("-")[0] for g in row["grafted"]]
        grafted = f"{len(names)}: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}" if names else "-"
        table.add_row(row["wheel"], row["origin"], row["platform"], _size(row["size"]), grafted)
    steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items())
    total = sum(timings.values()) if wall is None else wall
    overlapped = total < sum(timings.values()) - 0.05
    table.caption = f"total {total:.1f} s: {steps}" + (" (some at the same time)" if overlapped else "")
    return table


def print_summary(
    console: Console, rows: list[dict[str, Any]], timings: dict[str, float], wall: float | None = None
) -> None:
    console.print(summary_table(rows, timings, wall))


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(scrub(json.dumps(payload, indent=2, sort_keys=True)) + "\n")
