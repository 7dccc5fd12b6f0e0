"""The ``wheelbarrow`` command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ._config import OPTIONS, Config, load_config
from ._log import printable
from ._shapes import image_reference
from ._version import __version__
from .errors import INTERNAL_ERROR, ConfigError, Interrupted, WheelbarrowError

if TYPE_CHECKING:  # the pipeline and rich are imported once the signal handlers are in place
    from rich.console import Console

    from ._pipeline import Options, Run, Stage
    from ._report import ConsoleLog


def _days(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        msg = f"{text!r} is not a number of days (0 or more)"
        raise argparse.ArgumentTypeError(msg)
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with wheelbarrow's error form: one ERROR line, one TIP line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        _print_error(f"command line: {message}", [], f"Run '{self.prog} --help' for the commands and options.")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wheelbarrow",
        description="Build a hash-locked manylinux wheelhouse in an offline builder container.",
    )
    parser.add_argument("--version", action="version", version=f"wheelbarrow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _Parser(add_help=False)
    common.add_argument("--project", type=Path, default=Path(), help="project directory (default: .)")
    common.add_argument("-q", "--quiet", action="store_true", help="only stage lines, warnings, errors and the summary")
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout (logs stay on stderr)")
    common.add_argument(
        "-C",
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [tool.wheelbarrow] key (repeatable; lists are comma-separated)",
    )
    for option in OPTIONS:
        if option.flag:
            common.add_argument(f"--{option.key}", dest=f"opt_{option.key}", metavar="VALUE", help=option.help)
    sub.add_parser("init", parents=[common], help="write [tool.wheelbarrow] and a noxfile where a project has none")
    sub.add_parser("plan", parents=[common], help="print what would be fetched and built")
    sub.add_parser("build", parents=[common], help="build the wheelhouse (lock, fetch, build, repair)")
    sub.add_parser("image", parents=[common], help="build the runtime image from the wheelhouse, then verify it")
    sub.add_parser("verify", parents=[common], help="check the runtime image with the network off")
    publish = sub.add_parser("publish", parents=[common], help="write CI artifacts to dist/ (tarball, SBOM, image)")
    publish.add_argument("--push", metavar="REF", help="also push the image to a registry as REF")
    publish.add_argument(
        "--no-index",
        action="store_true",
        help="with targets and --push: push each target's image only, no index (a CI job of a fan-out; merge makes it)",
    )
    publish.add_argument("--simple-index", action="store_true", help="also write a PEP 503 index of the wheels")
    publish.add_argument("--skip-image", action="store_true", help="publish the wheelhouse only")
    merge = sub.add_parser(
        "merge", parents=[common], help="one dist/ from the dist/ folders of jobs that each published some targets"
    )
    merge.add_argument("parts", nargs="+", type=Path, metavar="PART", help="a dist/ folder a job published")
    merge.add_argument("--push", metavar="REF", help="also push one image index per CPython as REF-cpXY")
    boot = sub.add_parser("bootstrap", parents=[common], help="make local base images from Debian packages")
    boot.add_argument("--suite", help="Debian suite (default: debian-suite from the config)")
    cache = sub.add_parser("cache", parents=[common], help="show or prune the build cache")
    cache.add_argument("action", choices=("info", "prune"))
    cache.add_argument("--older-than", type=_days, default=30, metavar="DAYS", help="prune: unused for DAYS (0: all)")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep:
            msg = f"-C {item!r} is not KEY=VALUE"
            raise ConfigError(msg, tip="Write it as -C key=value, e.g. -C python=3.11.")
        out[key.strip()] = value
    for name, value in vars(args).items():
        if name.startswith("opt_") and value is not None:
            out[name.removeprefix("opt_")] = value
    return out


def load(args: argparse.Namespace) -> Config:
    return load_config(args.project, environ=os.environ, overrides=_overrides(args))


def _options(args: argparse.Namespace) -> Options:
    from ._pipeline import Options  # noqa: PLC0415 - imported after the signal handlers are set

    push = getattr(args, "push", None)
    if push is not None:  # it reaches the engine's command line: a reference, never an option
        tip = "Give --push an image reference, e.g. --push registry.example:5000/team/app:1.0 (lower case)."
        image_reference(push, "--push", ConfigError, tip=tip)
        if "@" in push:  # a digest names what is there; a push makes a tag
            raise ConfigError(f"--push {push}: a push names a tag, not a digest", tip=tip)
    return Options(
        skip_image=getattr(args, "skip_image", False),
        simple_index=getattr(args, "simple_index", False),
        push=getattr(args, "push", None),
        no_index=getattr(args, "no_index", False),
        suite=getattr(args, "suite", None),
        parts=tuple(getattr(args, "parts", ())),
        prune_older_than=args.older_than if getattr(args, "action", None) == "prune" else None,
    )


def pipeline(command: str, *, push: bool = False) -> tuple[Stage, ...]:
    """The pipeline each command runs (merge with ``--push`` uses the engine, merge alone does not)."""
    from . import _pipeline  # noqa: PLC0415 - imported after the signal handlers are set

    if command == "merge":
        return _pipeline.MERGE_PUSH if push else _pipeline.MERGE
    return {
        "init": _pipeline.INIT,
        "plan": _pipeline.PLAN,
        "build": _pipeline.BUILD,
        "image": _pipeline.IMAGE,
        "verify": _pipeline.VERIFY,
        "publish": _pipeline.PUBLISH,
        "bootstrap": _pipeline.BOOTSTRAP,
        "cache": _pipeline.CACHE,
    }[command]


def _report(args: argparse.Namespace, runs: list[Run], console: Console, log: ConsoleLog) -> None:
    """What a command prints when it succeeds: a summary, or JSON on stdout with --json (with several
    targets, ``{"targets": [{"target": ..., <the same keys>}, ...]}``)."""
    from ._report import print_json  # noqa: PLC0415 - after the signal handlers

    if len(runs) == 1:
        payload = _payload(args, runs[0].config, runs[0], console, log)
    else:
        each = [{"target": r.config.target, **_payload(args, r.config, r, console, log)} for r in runs]
        payload = {"targets": [{**p, "timings": r.timings, "wall": r.wall} for p, r in zip(each, runs, strict=True)]}
    if args.json:
        totals: dict[str, float] = {}
        for run in runs:  # with several targets, each stage's time summed over them
            for name, seconds in run.timings.items():
                totals[name] = totals.get(name, 0.0) + seconds
        # "wall": the run's seconds; less than the sum of "timings" where stages ran at the same time
        print_json({**payload, "timings": totals, "wall": sum(run.wall for run in runs)})


def _payload(
    args: argparse.Namespace, config: Config, run: Run, console: Console, log: ConsoleLog
) -> dict[str, object]:
    from ._report import print_summary  # noqa: PLC0415 - after the signal handlers

    payload: dict[str, object] = {}
    match args.command:
        case "plan":
            plan = run.need_plan()
            payload = {
                "index_wheels": [{"name": w.name, "version": w.version} for w in plan.index_wheels],
                "sdist_builds": [{"name": b.name, "version": b.version, "reason": b.reason} for b in plan.sdist_builds],
                "project": {"name": plan.project.name, "version": plan.project.version, "engine": plan.project.engine},
            }
        case "build":
            if not args.json:
                if config.target:
                    console.print(f"target {config.target}: {config.wheelhouse}")
                print_summary(console, run.summary, run.timings, run.wall)
            payload = {"wheelhouse": str(config.wheelhouse), "wheels": run.summary, "timings": run.timings}
        case "image" if run.image:
            payload = {"image": run.image.tag, "id": run.image.image_id, "builder": run.image.builder}
            payload["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in run.checks]
        case "verify":
            checks = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in run.checks]
            payload = {"image": run.verified, "verified": True, "checks": checks}
        case "publish" if run.published:
            published = run.published
            payload = {"dist": str(published.dist), "files": list(published.files), "pushed": published.pushed}
        case "merge" if run.merged:
            merged = run.merged
            payload = {"dist": str(merged.dist), "targets": list(merged.targets), "files": list(merged.files)}
            payload["indexes"] = list(merged.indexes)
        case "cache":
            if not args.json:
                for name, section in run.cache_info.items():
                    log.sink(f"{name:<10} {section['entries']:>5} entries  {section['bytes'] / 1e6:8.1f} MB")
                log.sink(f"cache: {config.cache_dir}")
            payload = {"cache_dir": str(config.cache_dir), "sections": run.cache_info}
    return payload


#: Signals that end a run the way Ctrl-C does: children stopped, containers and work removed.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _on_signal(signum: int, _frame: object) -> None:
    if _STOPPING:
        return  # cleaning up after the first signal: a second one must not cut it short
    _STOPPING.append(signum)
    raise Interrupted(signum)


_STOPPING: list[int] = []


def _print_error(first: str, details: list[str], tip: str) -> None:
    print(f"ERROR: {printable(first)}", file=sys.stderr)
    for line in details:  # indented, so no detail line reads as a second error
        print(f"  {printable(line)}", file=sys.stderr)
    if tip:
        print(f"TIP: {printable(tip)}", file=sys.stderr)


def _internal_error(err: BaseException) -> int:
    """The last resort: an unforeseen error is a bug; its traceback is saved, never shown raw."""
    fd, saved = tempfile.mkstemp(prefix="wheelbarrow-crash-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as stream:
        stream.write(f"wheelbarrow {__version__}, {sys.version.split()[0]}, argv {sys.argv!r}\n\n")
        stream.write("".join(traceback.format_exception(err)))
    first = f"internal error: {type(err).__name__}: {err}".splitlines()[0][:300]
    _print_error(first, [f"traceback saved in {saved}"], f"This is a bug in wheelbarrow: report it with {saved}.")
    return INTERNAL_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    _STOPPING.clear()
    previous = {signum: signal.signal(signum, _on_signal) for signum in SIGNALS}
    try:
        return _main(argv)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        from rich.console import Console  # noqa: PLC0415 - after the signal handlers

        from ._pipeline import execute_all  # noqa: PLC0415
        from ._report import ConsoleLog, print_json  # noqa: PLC0415

        console = Console(stderr=True)
        if not console.is_terminal:
            console = Console(stderr=True, width=160)  # CI logs: wide enough for wheel file names
        log = ConsoleLog(console, quiet=args.quiet)
        config = load(args)
        stages = pipeline(args.command, push=getattr(args, "push", None) is not None)
        runs = execute_all(config, log, stages, _options(args))
        _report(args, runs, console, log)
    except WheelbarrowError as err:
        first, *details = err.message.splitlines() or [""]
        _print_error(first, details, err.tip)
        if args.json:
            print_json({"error": printable(err.message), "tip": printable(err.tip), "exit_code": err.return_code})
        return err.return_code
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        tip = "Run the same command again: nothing was left half-written"
        tip += ", and what finished is in the cache." if args.command in ("build", "image", "bootstrap") else "."
        said = f"interrupted ({name}); every output is whole, the previous one or the new one"
        _print_error(said, [], tip)
        if args.json:
            print(json.dumps({"error": said, "tip": tip, "exit_code": 128 + signum}))
        return 128 + signum
    except Exception as err:  # noqa: BLE001 - the last resort: every foreseen failure is a WheelbarrowError
        code = _internal_error(err)
        if args.json:
            print(json.dumps({"error": "internal error", "exit_code": code}))
        return code
    return 0
