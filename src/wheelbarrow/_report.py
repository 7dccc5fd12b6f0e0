"""How the CLI shows a run: rich progress on a terminal, a summary table, or JSON for CI."""

from __future__ import annotations

import contextlib
import json
import sys
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

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        spinner = self.quiet and self.console.is_terminal
        with self.console.status(f"{name} ...") if spinner else contextlib.nullcontext(), super().stage(name):
            yield


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def summary_table(rows: list[dict[str, Any]], timings: dict[str, float]) -> Table:
    table = Table(title="wheelhouse", title_justify="left")
    for column in ("wheel", "origin", "platform", "size", "grafted libraries"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        names = [g.split("-")[0] for g in row["grafted"]]
        grafted = f"{len(names)}: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}" if names else "-"
        table.add_row(row["wheel"], row["origin"], row["platform"], _size(row["size"]), grafted)
    steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items())
    table.caption = f"total {sum(timings.values()):.1f} s: {steps}"
    return table


def print_summary(console: Console, rows: list[dict[str, Any]], timings: dict[str, float]) -> None:
    console.print(summary_table(rows, timings))


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(scrub(json.dumps(payload, indent=2, sort_keys=True)) + "\n")
