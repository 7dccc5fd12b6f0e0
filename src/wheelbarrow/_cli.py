"""The ``wheelbarrow`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from ._bootstrap import bootstrap
from ._config import OPTIONS, Config, load_config
from ._engine import Engine
from ._log import Log
from ._pipeline import BUILD, IMAGE, PLAN, VERIFY, execute
from .errors import ConfigError, WheelbarrowError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wheelbarrow",
        description="Build a hash-locked manylinux wheelhouse in an offline builder container.",
    )
    parser.add_argument("--version", action="version", version=f"wheelbarrow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", type=Path, default=Path(), help="project directory (default: .)")
    common.add_argument("-q", "--quiet", action="store_true", help="only stage lines, warnings and errors")
    common.add_argument(
        "-C",
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [tool.wheelbarrow] key (repeatable; lists are comma-separated)",
    )
    for option in OPTIONS:
        if option.key in {
            "python",
            "wheelhouse",
            "builder-base",
            "runtime-base",
            "debian-suite",
            "lock",
            "image-tag",
            "jobs",
            "cache-dir",
        }:
            common.add_argument(f"--{option.key}", dest=f"opt_{option.key}", metavar="VALUE", help=option.help)
    sub.add_parser("plan", parents=[common], help="print what would be fetched and built")
    sub.add_parser("build", parents=[common], help="build the wheelhouse (lock, fetch, build, repair)")
    sub.add_parser("image", parents=[common], help="build the runtime image from the wheelhouse, then verify it")
    sub.add_parser("verify", parents=[common], help="check the runtime image with the network off")
    boot = sub.add_parser("bootstrap", parents=[common], help="make local base images from Debian packages")
    boot.add_argument("--suite", help="Debian suite (default: debian-suite from the config)")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log = Log(quiet=args.quiet)
    try:
        config = load(args)
        match args.command:
            case "plan":
                execute(config, log, PLAN)
            case "build":
                execute(config, log, BUILD)
            case "image":
                execute(config, log, IMAGE)
            case "verify":
                execute(config, log, VERIFY)
            case "bootstrap":
                bootstrap(config, Engine(log, name=config.engine), log, suite=args.suite)
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
