"""wheelbarrow's own sessions. `build_wheels` dogfoods it on examples/service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT / "src"))  # the helpers come from this checkout, not an installed copy

import wheelbarrow.nox  # noqa: E402 - needs the path above

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

EXAMPLE = "examples/service"
#: The development and CI tools, locked in poetry.lock and exported with their hashes.
DEV_REQUIREMENTS = ROOT / "dev-requirements.txt"


def install_locked(session: nox.Session) -> None:
    """The locked tools (hashes required), then wheelbarrow from this checkout without re-resolving."""
    session.install("--require-hashes", "-r", str(DEV_REQUIREMENTS))
    session.install("--no-deps", str(ROOT))


@nox.session
def build_wheels(session: nox.Session) -> None:
    """Build the example service's wheelhouse into ./wheelhouse."""
    wheelbarrow.nox.build_wheels(session, project=EXAMPLE, wheelhouse=str(ROOT / "wheelhouse"))


@nox.session
def image(session: nox.Session) -> None:
    """Build and verify the example service's runtime image from ./wheelhouse."""
    wheelbarrow.nox.image(session, project=EXAMPLE, wheelhouse=str(ROOT / "wheelhouse"))


@nox.session
def verify(session: nox.Session) -> None:
    """Verify the example service's runtime image (network off)."""
    wheelbarrow.nox.verify(session, project=EXAMPLE, wheelhouse=str(ROOT / "wheelhouse"))


@nox.session
def publish(session: nox.Session) -> None:
    """Write ./dist for the example service: wheelhouse tarball, SBOM, image archive, SHA256SUMS."""
    wheelbarrow.nox.publish(session, project=EXAMPLE, wheelhouse=str(ROOT / "wheelhouse"), dist_dir=str(ROOT / "dist"))


MULTI = "examples/multi-target"


@nox.session
def multi_target(session: nox.Session) -> None:
    """Build, image and verify examples/multi-target: cp311 and cp313 on x86_64, cp311 on aarch64 (under
    QEMU's user emulation on an x86_64 machine), into ./wheelhouse-multi/<target>/."""
    wheelhouse = str(ROOT / "wheelhouse-multi")
    wheelbarrow.nox.build_wheels(session, project=MULTI, wheelhouse=wheelhouse)
    wheelbarrow.nox.image(session, project=MULTI, wheelhouse=wheelhouse)


@nox.session
def multi_target_publish(session: nox.Session) -> None:
    """Write ./dist-multi for examples/multi-target: each target's folder, and SHA256SUMS over them (a CI
    job of the fan-out passes ``-- --push REF --no-index``)."""
    wheelbarrow.nox.publish(
        session, project=MULTI, wheelhouse=str(ROOT / "wheelhouse-multi"), dist_dir=str(ROOT / "dist-multi")
    )


@nox.session
def multi_target_merge(session: nox.Session) -> None:
    """The fan-out's last job: ./dist-multi from the dist-multi/ folders the target jobs published, given
    after ``--`` (with ``--push REF``, one image index per CPython)."""
    wheelbarrow.nox.merge(session, project=MULTI, dist_dir=str(ROOT / "dist-multi"))


@nox.session
def tests(session: nox.Session) -> None:
    """Unit tests (no docker), then integration tests (real engine, PostgreSQL). The emulated tier (the
    aarch64 target under QEMU: minutes of emulated CPU) runs beside them, in a pytest of its own, and its
    report follows theirs; the last line counts both."""
    install_locked(session)
    if session.posargs:
        session.run("pytest", *session.posargs)
        return
    reports = ROOT / ".nox" / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    emulated_log = reports / "emulated.log"
    env = {**os.environ, "PATH": f"{session.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    with emulated_log.open("wb") as log:
        emulated = subprocess.Popen(
            ["pytest", "-m", "emulated", "tests/integration", f"--junitxml={reports / 'emulated.xml'}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:
        session.run(
            "pytest", "-m", "not emulated", "tests/unit", "tests/integration", f"--junitxml={reports / 'main.xml'}"
        )
    finally:
        code = emulated.wait()
        session.log("the emulated tier (aarch64 under QEMU), run beside the rest:")
        print(emulated_log.read_text(encoding="utf-8", errors="replace"), flush=True)
        passed, failed = _counts(reports / "main.xml", reports / "emulated.xml")
        print(f"tests: {passed} passed, {failed} failed", flush=True)
    if code != 0:
        session.error("the emulated tier failed: see its report above")


def _counts(*reports: Path) -> tuple[int, int]:
    """(passed, failed) over pytest's JUnit XML reports (a report that is missing counts one failure)."""
    passed = failed = 0
    for report in reports:
        try:
            tree = ET.parse(report)  # noqa: S314 - pytest wrote it, on this machine
            suites = list(tree.getroot().iter("testsuite"))
        except (OSError, ET.ParseError):
            failed += 1
            continue
        for suite in suites:
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            passed += int(suite.get("tests", 0)) - bad - int(suite.get("skipped", 0))
            failed += bad
    return passed, failed


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests only: seconds, no docker, no network."""
    install_locked(session)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy (strict)."""
    install_locked(session)
    session.run("ruff", "check", "src", "tests", "noxfile.py", "examples", "bench")
    session.run("mypy")
