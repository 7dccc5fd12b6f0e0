"""Nox helpers: a project's noxfile needs a PEP 723 block naming wheelbarrow and three lines.

.. code-block:: python

    # /// script
    # dependencies = ["nox>=2025.2.9", "wheelbarrow[poetry,uv]==VERSION"]
    # ///
    import nox
    import wheelbarrow.nox
    nox.session(wheelbarrow.nox.build_wheels)

(``wheelbarrow init`` writes it.)

(add ``nox.session(wheelbarrow.nox.image)`` and ``nox.session(wheelbarrow.nox.verify)``
for the runtime image). Each helper installs wheelbarrow with its tools (poetry, poetry-plugin-export,
uv, cibuildwheel) into the session's own virtual environment, never assuming them
on the host, and runs the ``wheelbarrow`` command there (so a session and the CLI run the
same pipeline). A failure ends the session with wheelbarrow's one-line cause and fix
(printed above it).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from ._version import EXTRAS, source_requirement, with_tools

if TYPE_CHECKING:
    import nox

__all__ = ["build_wheels", "image", "install_spec", "merge", "publish", "verify"]


def install_spec() -> str:
    """What to install into a session, lock tools always included: ``NOX_WHEELBARROW_INSTALL`` (a version, a
    path, a git URL) if set, else this checkout if wheelbarrow runs from one, else where the running
    wheelbarrow was installed from (a path, a git URL), else its release."""
    override = os.environ.get("NOX_WHEELBARROW_INSTALL")
    if override:
        return with_tools(override)
    checkout = Path(__file__).resolve().parents[2]
    pyproject = checkout / "pyproject.toml"
    if pyproject.is_file():
        name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name")
        if name == "wheelbarrow":
            return f"{checkout}[{EXTRAS}]"
    return source_requirement()


def _local_tree(spec: str) -> Path | None:
    """The folder a requirement installs from (``/path[extras]``, ``name @ file:///path``), if it is one."""
    location = spec.split(" @ ", 1)[1] if " @ " in spec else spec
    location = location.removeprefix("file://").split("[", 1)[0].strip()
    path = Path(location)
    return path if path.is_absolute() and path.is_dir() else None


def _fingerprint(spec: str) -> str | None:
    """What makes an install of ``spec`` the same as the last one: a release, or a VCS URL pinned to a full
    commit, names the same files always; a local folder is the same while its source files are (their
    paths, modes and contents); anything else is installed every time."""
    if "==" in spec or re.search(r"@[0-9a-f]{40}$", spec) is not None:
        return spec
    tree = _local_tree(spec)
    if tree is None:
        return None
    from ._cache import IGNORED_IN_PROJECT, tree_digest  # noqa: PLC0415 - only a path install needs it

    return f"{spec}\n{tree_digest(tree, IGNORED_IN_PROJECT)}"


def _install(session: nox.Session) -> None:
    """Install wheelbarrow into the session, unless a reused environment holds the same install already: the
    same release, or the same local folder with the same source files (so a no-op run through nox does not
    reinstall from a path each time)."""
    spec = install_spec()
    location = getattr(session.virtualenv, "location", None)
    stamp = Path(location) / "wheelbarrow-installed.txt" if isinstance(location, str) else None
    fingerprint = _fingerprint(spec)
    if stamp is not None and fingerprint and stamp.is_file() and stamp.read_text(encoding="utf-8") == fingerprint:
        session.log(f"wheelbarrow is installed already ({spec}); reusing the session's environment")
        return
    session.install(spec)
    if stamp is not None and fingerprint:
        stamp.write_text(fingerprint, encoding="utf-8")


def _run_wheelbarrow(session: nox.Session, command: str, project: str, extra: list[str]) -> None:
    import nox  # noqa: PLC0415 - the helpers are only called inside a nox run

    _install(session)
    try:
        session.run("wheelbarrow", command, "--project", project, *extra, *session.posargs)
    except nox.command.CommandFailed:
        session.error(f"wheelbarrow {command} failed: see the ERROR and TIP lines above")


def build_wheels(session: nox.Session, project: str = ".", wheelhouse: str | None = None) -> None:
    """Build the project's wheelhouse: lock, fetch, build and repair in an offline builder."""
    _run_wheelbarrow(session, "build", project, ["--wheelhouse", wheelhouse] if wheelhouse else [])


def image(session: nox.Session, project: str = ".", wheelhouse: str | None = None) -> None:
    """Build the runtime image from the wheelhouse, then verify it (network off)."""
    _run_wheelbarrow(session, "image", project, ["--wheelhouse", wheelhouse] if wheelhouse else [])


def verify(session: nox.Session, project: str = ".", wheelhouse: str | None = None) -> None:
    """Check the runtime image: no compiler, non-root, every extension loads, one libssl, dependencies met."""
    _run_wheelbarrow(session, "verify", project, ["--wheelhouse", wheelhouse] if wheelhouse else [])


def publish(
    session: nox.Session, project: str = ".", wheelhouse: str | None = None, dist_dir: str | None = None
) -> None:
    """Write dist/: the wheelhouse tarball, a CycloneDX SBOM, the image archive and SHA256SUMS."""
    extra = ["--wheelhouse", wheelhouse] if wheelhouse else []
    extra += ["--dist-dir", dist_dir] if dist_dir else []
    _run_wheelbarrow(session, "publish", project, extra)


def merge(session: nox.Session, project: str = ".", dist_dir: str | None = None) -> None:
    """One dist/ from the dist/ folders of CI jobs that each published some of the project's targets (the
    folders, and ``--push REF`` for the image indexes, come after ``--``: ``nox -s merge -- parts/*``)."""
    _run_wheelbarrow(session, "merge", project, ["--dist-dir", dist_dir] if dist_dir else [])
