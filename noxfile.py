"""wheelbarrow's own sessions. `build_wheels` dogfoods it on examples/service."""

from __future__ import annotations

import sys
from pathlib import Path

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
def tests(session: nox.Session) -> None:
    """Unit tests (no docker), then integration tests (real engine, PostgreSQL)."""
    install_locked(session)
    session.run("pytest", *(session.posargs or ["tests/unit", "tests/integration"]))


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
