"""The ``wheelbarrow`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from . import __version__
from ._bootstrap import bootstrap
from ._cache import Cache
from ._config import OPTIONS, Config, load_config
from ._engine import Engine
from ._pipeline import BUILD, IMAGE, PLAN, VERIFY, execute
from ._publish import publish
from ._report import ConsoleLog, print_json, print_summary
from .errors import ConfigError, WheelbarrowError

FLAGS = (
    "python",
    "wheelhouse",
    "builder-base",
    "runtime-base",
    "debian-suite",
    "lock",
    "image-tag",
    "jobs",
    "cache-dir",
    "dist-dir",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wheelbarrow",
        description="Build a hash-locked manylinux wheelhouse in an offline builder container.",
    )
    parser.add_argument("--version", action="version", version=f"wheelbarrow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
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
        if option.key in FLAGS:
            common.add_argument(f"--{option.key}", dest=f"opt_{option.key}", metavar="VALUE", help=option.help)
    sub.add_parser("plan", parents=[common], help="print what would be fetched and built")
    sub.add_parser("build", parents=[common], help="build the wheelhouse (lock, fetch, build, repair)")
    sub.add_parser("image", parents=[common], help="build the runtime image from the wheelhouse, then verify it")
    sub.add_parser("verify", parents=[common], help="check the runtime image with the network off")
    publish = sub.add_parser("publish", parents=[common], help="write CI artifacts to dist/ (tarball, SBOM, image)")
    publish.add_argument("--push", metavar="REF", help="also push the image to a registry as REF")
    publish.add_argument("--simple-index", action="store_true", help="also write a PEP 503 index of the wheels")
    publish.add_argument("--skip-image", action="store_true", help="publish the wheelhouse only")
    boot = sub.add_parser("bootstrap", parents=[common], help="make local base images from Debian packages")
    boot.add_argument("--suite", help="Debian suite (default: debian-suite from the config)")
    cache = sub.add_parser("cache", parents=[common], help="show or prune the build cache")
    cache.add_argument("action", choices=("info", "prune"))
    cache.add_argument("--older-than", type=float, default=30, metavar="DAYS", help="prune: unused for DAYS (0: all)")
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


def _cache_command(args: argparse.Namespace, config: Config, log: ConsoleLog) -> None:
    cache = Cache(config.cache_dir, log)
    if args.action == "prune":
        removed = cache.prune(args.older_than)
        log.sink(f"removed {removed} cache entries from {config.cache_dir}")
    info = cache.info()
    if args.json:
        print_json({"cache_dir": str(config.cache_dir), "sections": info})
        return
    for name, section in info.items():
        log.sink(f"{name:<10} {section['entries']:>5} entries  {section['bytes'] / 1e6:8.1f} MB")
    log.sink(f"cache: {config.cache_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=160)  # CI logs: wide enough for wheel file names
    log = ConsoleLog(console, quiet=args.quiet)
    try:
        config = load(args)
        match args.command:
            case "plan":
                execute(config, log, PLAN)
            case "build":
                run = execute(config, log, BUILD)
                if args.json:
                    print_json({"wheelhouse": str(config.wheelhouse), "wheels": run.summary, "timings": log.timings})
                else:
                    print_summary(console, run.summary, log.timings)
            case "image":
                run = execute(config, log, IMAGE)
                if args.json and run.image:
                    print_json({"image": run.image.tag, "id": run.image.image_id, "builder": run.image.builder})
            case "verify":
                execute(config, log, VERIFY)
            case "publish":
                engine = Engine(log, name=config.engine)
                engine.check()
                with log.stage("publish"):
                    published = publish(
                        config, engine, log, skip_image=args.skip_image, simple=args.simple_index, push=args.push
                    )
                if args.json:
                    print_json(
                        {"dist": str(published.dist), "files": list(published.files), "pushed": published.pushed}
                    )
            case "bootstrap":
                bootstrap(config, Engine(log, name=config.engine), log, suite=args.suite)
            case "cache":
                _cache_command(args, config, log)
    except WheelbarrowError as err:
        first, *details = err.message.splitlines() or [""]
        print(f"ERROR: {first}", file=sys.stderr)
        for line in details:  # indented, so no detail line reads as a second error
            print(f"  {line}", file=sys.stderr)
        if err.tip:
            print(f"TIP: {err.tip}", file=sys.stderr)
        return err.return_code
    except KeyboardInterrupt:
        print("ERROR: interrupted; the previous wheelhouse is untouched", file=sys.stderr)
        return 130
    return 0
