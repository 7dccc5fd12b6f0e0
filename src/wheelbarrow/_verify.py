"""Stage 8, verify: prove the runtime image is what it claims, with the network off.

:mod:`wheelbarrow._probe` runs inside a container of the image (as the
image's own user, ``--network none``) and reports; this module judges:

* no compiler, assembler, linker or build driver (cc, gcc, g++, clang, ld, as, make ...,
  any version or target prefix), no C or C++ header in the system's or Python's include folders;
* the process is not root, and cannot write to the venv;
* every extension module in the venv imports, and the loader would find every library of every ELF file
  in the venv (shared objects and executables), resolved by :mod:`wheelbarrow._elf` in the image (no
  ``ldd``: a distroless image has none, and both styles are checked the same way);
* every executable that links libpython (or imports ``Py*`` symbols) starts with every symbol bound at once
  (``LD_BIND_NOW=1``, ``--version``) and sits where its interpreter finds the
  venv (``pyvenv.cfg`` beside it or one folder up, as CPython looks);
* every script in the venv's bin has its ``#!`` interpreter (``#!/bin/sh`` in a distroless image has none);
* after importing them (and ``ssl``) exactly one libssl is mapped;
* every library the manifest expects from the base is there, and every ``runtime-packages`` package;
* no ``*.whl`` beyond those the base image itself ships;
* for a distroless image: no shell, package manager, busybox or coreutils in the system's bin folders;
* every installed distribution's requirements (Requires-Dist, markers evaluated for the image's Python)
  are installed in versions they accept, as ``pip check`` says it, judged here with ``packaging``;
* the image's own command, started with the network off, is still running after 3 s or exited 0.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import _probe
from ._cache import Cache, key_of, sha256_of
from ._engine import Engine, Started
from ._log import Log
from ._manifest import Manifest
from .errors import VerifyError

PROBE = Path(__file__).with_name("_probe.py")
VENV_PYTHON = "/opt/venv/bin/python"
ELF = Path(__file__).with_name("_elf.py")
#: Runs the probe in the image from its source and :mod:`wheelbarrow._elf`'s, both read from stdin: the
#: image needs nothing but its Python (no shell, no file copied in).
BOOT = (
    "import json, sys, types\n"
    "sources = json.load(sys.stdin)\n"
    "package = types.ModuleType('wheelbarrow'); package.__path__ = []; sys.modules['wheelbarrow'] = package\n"
    "elf = types.ModuleType('wheelbarrow._elf'); sys.modules[elf.__name__] = elf; package._elf = elf\n"
    "exec(compile(sources['elf'], '_elf.py', 'exec'), elf.__dict__)\n"
    "exec(compile(sources['probe'], '_probe.py', 'exec'), {'__name__': '__main__'})\n"
)


def probe_input() -> bytes:
    return json.dumps({"elf": ELF.read_text(encoding="utf-8"), "probe": PROBE.read_text(encoding="utf-8")}).encode()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def probe(engine: Engine, image: str, args: list[str], python: str) -> dict[str, Any]:
    """Run the probe in a container of ``image``, with ``-S``: no .pth file of the venv runs in the process
    that writes the report (the venv's modules are imported in a child of it), and the report is the
    last line that starts with its own prefix, so nothing a package prints can pass for it."""
    result = engine.run_image(image, [python, "-S", "-c", BOOT, *args], stdin=probe_input())
    lines = [line for line in result.output.splitlines() if line.startswith(_probe.REPORT)]
    try:
        report: dict[str, Any] = json.loads(lines[-1].removeprefix(_probe.REPORT))
    except (json.JSONDecodeError, IndexError) as err:
        msg = f"the image check could not run in {image}:\n{result.tail(15)}"
        raise VerifyError(msg, tip=LOOK) from err
    if not isinstance(report, dict):
        msg = f"the image check in {image} gave no report"
        raise VerifyError(msg, tip=LOOK)
    return report


LOOK = (
    "Look around in a container of the image: docker run --rm -it --entrypoint sh IMAGE; for a distroless "
    "image, docker run --rm -it --pid container:C --network container:C --cap-add SYS_PTRACE busybox sh beside "
    "a running one (C), or the runtime base instead of busybox."
)


def dependency_problems(report: dict[str, Any]) -> list[str]:
    """What ``pip check`` would say of the venv, from the distributions the probe found (name, version,
    Requires-Dist) and its environment markers. Pure: unit-tested with fakes."""
    nameless = [d for d in report["distributions"] if not d.get("name") or not d.get("version")]
    problems = [f"{d.get('path', 'a .dist-info folder')} has no METADATA with a Name and a Version." for d in nameless]
    dists = [d for d in report["distributions"] if d not in nameless]
    versions: dict[str, list[str]] = {}
    for dist in dists:
        versions.setdefault(canonicalize_name(str(dist["name"])), []).append(str(dist["version"]))
    for name, seen in sorted(versions.items()):
        if len(seen) > 1:
            problems.append(f"{name} is installed {len(seen)} times ({', '.join(seen)}): one must go.")
    installed = {name: seen[0] for name, seen in versions.items()}
    for dist in sorted(dists, key=lambda d: canonicalize_name(str(d["name"]))):
        name, version = dist["name"], dist["version"]
        for text in dist["requires"]:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                problems.append(f"{name} {version} has an invalid requirement {text!r}.")
                continue
            if req.marker is not None and not req.marker.evaluate({**report["environment"], "extra": ""}):
                continue
            have = installed.get(canonicalize_name(req.name))
            if have is None:
                problems.append(f"{name} {version} requires {req.name}, which is not installed.")
            elif not req.specifier.contains(have, prereleases=True):
                problems.append(f"{name} {version} has requirement {req}, but you have {req.name} {have}.")
    return problems


def _some(items: list[str], shown: int = 5) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


LIBRARIES_CHECK = "every extension imports and every ELF file's libraries are found"


SHELL_CHECK = "no shell, package manager or coreutils (distroless)"
SCRIPTS_CHECK = "every script's interpreter is there"


def judge(
    report: dict[str, Any], base_wheels: list[str], manifest: Manifest, *, distroless: bool = False
) -> list[Check]:
    """Turn a probe report into checks (a distroless image's one more: it holds no shell). Pure:
    unit-tested on recorded reports."""
    tools = {k: v for k, v in report["tools"].items() if v}
    elf = report["elf"]
    broken = [e for e in elf if e["missing"] or e["import_error"]]
    modules = [e for e in elf if e["module"]]
    executables = [e for e in elf if e["kind"] == "executable"]
    embedders = [e for e in elf if e.get("embeds_python")]
    not_starting = [e for e in embedders if e["start_error"] or not e["sees_venv"]]
    expected = report["expected_from_base"]
    extra_wheels = sorted(set(report["wheels"]) - set(base_wheels))
    ssl = report["libssl_mapped"]
    problems = dependency_problems(report)
    packages: dict[str, bool | None] = report.get("runtime_packages", {})
    wanted = sorted({s for w in manifest.wheels for s in w.expected_from_base})
    # A wheelhouse of pure-Python wheels has no ELF file; one with platform wheels must have some.
    needs_elf = any(w.platform_tag != "any" for w in manifest.wheels)
    shells = report.get("shells", {})
    scripts = report.get("scripts", [])
    distroless_checks = [
        Check(SHELL_CHECK, not shells, ", ".join(f"{k}={v}" for k, v in shells.items()) or "none found"),
    ]
    return [
        *(distroless_checks if distroless else []),
        Check("no compiler or build tool", not tools, ", ".join(f"{k}={v}" for k, v in tools.items()) or "none found"),
        Check("no C or C++ headers", not report["headers"], _some(report["headers"])),
        Check("runs as non-root", report["uid"] != 0, f"uid {report['uid']}"),
        Check("venv not writable by the runtime user", not report["venv_writable"], "/opt/venv"),
        Check(
            LIBRARIES_CHECK,
            (bool(elf) or not needs_elf) and not broken,
            "; ".join(f"{e['file']}: {e['import_error'] or 'missing ' + _some(e['missing'])}" for e in broken)
            or f"{len(modules)} modules, {len(executables)} executables, {len(elf)} ELF files"
            + ("" if needs_elf else " (every wheel is pure Python)"),
        ),
        Check(
            "executables that embed Python start and find the venv",
            not not_starting,
            "; ".join(
                f"{e['file']}: {e['start_error'] or 'no pyvenv.cfg beside it or one folder up'}" for e in not_starting
            )
            or (f"{len(embedders)} started" if embedders else "none in the venv"),
        ),
        Check(
            SCRIPTS_CHECK,
            not scripts,
            "; ".join(f"{e['file']}: no {e['interpreter']}" for e in scripts)
            or "every #! interpreter in /opt/venv/bin is there",
        ),
        Check("exactly one libssl mapped", len(ssl) == 1, ", ".join(ssl) or "none"),
        Check(
            "libraries expected from the base are present",
            all(expected.get(s) for s in wanted),
            ", ".join(f"{s}: {'yes' if expected.get(s) else 'MISSING'}" for s in wanted) or "none expected",
        ),
        Check(
            "runtime-packages are installed",
            all(v is not False for v in packages.values()),
            ", ".join(f"{p}: {'yes' if v else 'MISSING' if v is False else 'unknown'}" for p, v in packages.items())
            or "none configured",
        ),
        Check("no wheel files beyond the base's", not extra_wheels, ", ".join(extra_wheels) or "none"),
        Check(
            "dependency check",
            not problems,
            " ".join(problems) or f"{len(report['distributions'])} distributions, every requirement met",
        ),
    ]


#: How long the image's command must keep running (or exit 0) for "the command starts" to pass.
START_SECONDS = 3.0
START_CHECK = "the command starts and keeps running"
_RAISED = re.compile(r"\b\w*(?:Error|Exception)\b: ")


def start_check(
    started: Started,
    command: tuple[str, ...],
    since: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
) -> Check:
    """Whether the container running the image's own command is still running ``START_SECONDS`` after
    ``since`` (or ended with 0): a misspelt program or an app that does not import ends it at once."""
    shown = " ".join(command)
    if started.failed:
        return Check(START_CHECK, ok=False, detail=f"{shown}: it did not start: {started.failed}")
    while True:
        running, code, said = started.state()
        if not running or clock() - since >= START_SECONDS:
            break
        sleep(0.3)
    if running:
        return Check(START_CHECK, ok=True, detail=f"{shown}: running after {clock() - since:.0f} s (network off)")
    if code == 0:
        return Check(START_CHECK, ok=True, detail=f"{shown}: exited 0")
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    raised = [line for line in lines if _RAISED.search(line)]  # a traceback's last line says the most
    last = " | ".join(dict.fromkeys([*raised[-2:], *lines[-2:]])) or "it printed nothing"
    return Check(START_CHECK, ok=False, detail=f"{shown}: exited {code}: {last}")


def verify_image(
    engine: Engine,
    image: str,
    base: str,
    manifest: Manifest,
    log: Log,
    cache: Cache,
    command: tuple[str, ...] = (),
    *,
    start: bool = True,
    distroless: bool = False,
    shown: str = "",
) -> list[Check]:
    """Run the probe in ``image`` (and its command beside it) and judge; a failure names the image as
    ``shown`` (the tag it is built for; ``image`` is then the candidate it waits under)."""
    wanted = sorted({s for w in manifest.wheels for s in w.expected_from_base})
    base_wheels = cache.remember(
        key_of({"base-wheels": engine.image_id(base) or base, "probe": sha256_of(PROBE)}),
        list,
        lambda: list(probe(engine, base, ["wheels"], "python3")["wheels"]),
    )
    packages = json.dumps(list(manifest.runtime_base.packages))
    with contextlib.ExitStack() as stack:
        # the command starts first and runs while the probe does: the check costs no time of its own
        started = stack.enter_context(engine.started(image)) if command and start else None
        since = time.monotonic()
        report = probe(engine, image, ["full", json.dumps(wanted), packages], VENV_PYTHON)
        if started is not None:
            started_check = start_check(started, command, since, time.monotonic)
        elif command:
            started_check = Check(START_CHECK, ok=True, detail="not started (verify-start = false)")
        else:
            started_check = Check(START_CHECK, ok=True, detail="no command configured")
    checks = [*judge(report, base_wheels, manifest, distroless=distroless), started_check]
    for check in checks:
        log.info(f"  [{'PASS' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        names = "; ".join(f"{c.name} ({c.detail})" for c in failed)
        said = f"{shown} (waiting as {image}, never tagged)" if shown and shown != image else image
        msg = f"the image {said} failed {len(failed)} of {len(checks)} checks: {names}"
        tip = "Fix the runtime base or the wheelhouse, rebuild, and run 'wheelbarrow verify'."
        if any(c.name == SCRIPTS_CHECK for c in failed):
            tip += (
                " A script names an interpreter the image lacks (a distroless image has no /bin/sh): run it with "
                'the venv\'s python, or use runtime-style = "slim".'
            )
        if any(c.name == SHELL_CHECK for c in failed):
            tip += (
                " A distroless image copies no program of the base but its Python: one came with runtime-packages "
                "(every file of each listed package is copied); list only library packages there, or use "
                'runtime-style = "slim".'
            )
        if any(c.name == LIBRARIES_CHECK for c in failed):
            tip += (
                " A library an extension loads by name (dlopen) belongs in runtime-packages (its package), "
                "which the slim image installs and the distroless one copies whole."
            )
        raise VerifyError(msg, tip=tip)
    return checks
