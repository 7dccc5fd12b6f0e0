"""``wheelbarrow init``: a ``[tool.wheelbarrow]`` table and a noxfile for an existing project.

It reads the project's lock the way a build does (:func:`wheelbarrow._lock.read_lock`), learns the
file names a uv.lock or a requirements file leaves out (from uv.lock itself, or from the index's
simple pages by the locked sha256), and asks the planner which locked packages have no wheel for the
target: those go into ``build-from-source``, each with a TODO for the system packages it needs to
compile, which no lock says. It never overwrites: a pyproject.toml that already has the table, or an
existing ``noxfile.py``, is left as it is and the log says so. The table is appended as text, so the
file above it stays byte for byte what it was, and written atomically (a temporary file beside it,
then ``os.replace``); the noxfile is linked into place, so it never replaces one that appeared
meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import _lock, _shapes
from ._config import DERIVED_BUILDER, OPTIONS, Config, load_config
from ._engine import is_local_only
from ._fetch import belongs, open_indexes
from ._index import Client
from ._lock import Lock, LockedFile, LockedPackage
from ._log import Log
from ._plan import SdistBuild, make_plan
from ._sources import Index
from ._version import EXTRAS, __version__, source_requirement
from .errors import ConfigError

if TYPE_CHECKING:
    from ._cache import Cache
    from ._pipeline import Run

#: What a noxfile needs to declare so that nox (2025.2.9 or later) installs it into its script environment.
NOX_REQUIREMENT = "nox>=2025.2.9"
#: Development packages some common sdists compile against: (Debian, AlmaLinux as in manylinux).
SYSTEM_PACKAGE_HINTS = {
    "psycopg2": ("libpq-dev", "libpq-devel"),
    "lxml": ("libxml2-dev libxslt1-dev", "libxml2-devel libxslt-devel"),
    "python-ldap": ("libldap2-dev libsasl2-dev", "openldap-devel cyrus-sasl-devel"),
    "mysqlclient": ("default-libmysqlclient-dev pkg-config", "mysql-devel pkgconf-pkg-config"),
    "pycurl": ("libcurl4-openssl-dev", "libcurl-devel"),
}
#: What a compiled package loads at run time that its wheel cannot carry (plugins it dlopens, the
#: interpreter an executable embeds): Debian packages for runtime-packages. {python}: the target's.
RUNTIME_PACKAGE_HINTS = {
    "python-ldap": "libsasl2-modules",
    "mysqlclient": "libmariadb3",
    "pycurl": "libsasl2-modules",  # Debian's libcurl links OpenLDAP, whose SASL mechanisms are plugins
    "uwsgi": "libpython{python}",
}
#: Why a package is compiled, as the table's comment says it.
REASONS = {"no compatible wheel": "the lock has no wheel of it for this target", "build-from-source": "asked for"}
#: Keys that say what the target is: written when this run's configuration sets them, so the table keeps it.
TARGET_KEYS = ("targets", "groups", "builder-base", "debian-suite", "runtime-base")
#: The files of a locked package, as the index lists them (those with a locked sha256).
Lister = Callable[[LockedPackage], tuple[LockedFile, ...]]


@dataclass(frozen=True)
class Initialized:
    """What ``init`` did: each file written, or found and left as it was."""

    pyproject: Path
    noxfile: Path
    table_written: bool
    noxfile_written: bool
    build_from_source: tuple[str, ...] = ()


#: The noxfile's requirement for a release of wheelbarrow.
RELEASE = f"wheelbarrow[{EXTRAS}]=={__version__}"


def noxfile_text(requirement: str = RELEASE) -> str:
    """A noxfile that works where only nox is installed: nox reads its script block and installs wheelbarrow
    (``requirement``: the release, or where the wheelbarrow running init came from)."""
    return f'''# /// script
# dependencies = ["{NOX_REQUIREMENT}", "{requirement}"]
# ///
"""Build this project's wheelhouse with wheelbarrow: nox -s build_wheels (written by wheelbarrow init)."""

import nox

import wheelbarrow.nox

nox.options.reuse_venv = "yes"  # sessions keep their environment: wheelbarrow is installed once
nox.session(wheelbarrow.nox.build_wheels)
# The runtime image (set command and port in [tool.wheelbarrow] first), its checks and the CI artifacts:
# nox.session(wheelbarrow.nox.image)
# nox.session(wheelbarrow.nox.verify)
# nox.session(wheelbarrow.nox.publish)
# nox.session(wheelbarrow.nox.merge)    # the last job of a CI fan-out over targets

if __name__ == "__main__":
    nox.main()
'''


def has_table(pyproject: bytes, where: str) -> bool:
    tool = _shapes.toml(pyproject, where, ConfigError, tip="Fix the syntax error it names.").get("tool")
    return isinstance(tool, dict) and "wheelbarrow" in tool


def index_lister(client: Client, search: Callable[[str], Sequence[Index]]) -> Lister:
    """Files of a locked package from the indexes ``search`` names for it, picked by the locked sha256 and name."""

    def files(package: LockedPackage) -> tuple[LockedFile, ...]:
        for index in search(package.name):
            listed = client.project_files(index, package.name) or []
            found = tuple(
                LockedFile(f.filename, f.sha256)
                for f in listed
                if f.sha256 in package.hashes and belongs(f.filename, package.name, package.version)
            )
            if found:
                return found
        return ()

    return files


def fetch_lister(config: Config, lock: Lock, log: Log, machine: str) -> Lister:
    """The indexes fetch searches, in its order: pip's configuration and those the project declares."""
    client, sources = open_indexes(config.project_dir, config.python, machine, lock.source, log)
    return index_lister(client, sources.for_project)


def with_files(lock: Lock, log: Log, lister: Lister | None = None) -> Lock:
    """The lock with every package's file names, so the planner can tell a wheel from an sdist."""
    missing = [p for p in lock.packages if not p.files]
    if not missing:
        return lock
    if lock.kind == "uv":
        known = _lock.uv_lock_files(lock.source)
        found = {p: known.get((p.name, p.version), ()) for p in missing}
    else:
        log.info(f"{lock.source.name} names no files: asking the index for those of {len(missing)} packages")
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="wheelbarrow-init") as pool:
            found = dict(zip(missing, pool.map(lister or (lambda _p: ()), missing), strict=True))
    packages = []
    for package in lock.packages:
        files = tuple(f for f in found.get(package, package.files) if f.sha256 in package.hashes)
        if package in found and not files:
            log.warning(f"no file of {package.requirement} was found by its locked sha256: it is planned as a wheel")
        packages.append(replace(package, files=files))
    return replace(lock, packages=tuple(packages))


def _toml_value(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string with ASCII escapes is a TOML basic string


def target_values(config: Config) -> dict[str, object]:
    """``python``, and the target keys this run's configuration sets (flags, environment): what the plan assumed."""
    values: dict[str, object] = {} if config.targets else {"python": config.python}  # each target names its own
    defaults = {o.key: o.default for o in OPTIONS}
    for key in TARGET_KEYS:
        value, default = getattr(config, key.replace("-", "_")), defaults[key]
        if value != (default.replace("{python}", config.python) if isinstance(default, str) else default):
            values[key] = list(value) if isinstance(value, tuple) else value
    if config.lock is not None:
        values["lock"] = os.path.relpath(config.lock, config.project_dir)
    if validated(config.project_dir, values).glibc != config.glibc:
        values["glibc"] = config.glibc
    return values


def validated(project_dir: Path, values: Mapping[str, object]) -> Config:
    """The configuration a table of ``values`` gives, checked as wheelbarrow checks its own table."""
    return load_config(project_dir, environ={}, overrides=values)


def _hint(name: str, config: Config) -> str:
    debian, alma = SYSTEM_PACKAGE_HINTS.get(name, ("", ""))
    if not debian:
        return ""
    official = config.runtime_base.rsplit("/", 1)[-1].startswith("python:")  # python:3.X-slim: Debian
    derived_from_debian = config.builder_base == DERIVED_BUILDER and official
    if config.debian_suite or is_local_only(config.builder_base) or derived_from_debian:
        return f" (e.g. {debian} on Debian, the runtime base's distribution)"
    if "manylinux" in config.builder_base:
        return f" (e.g. {alma} on AlmaLinux, the manylinux builder)"
    return f" (e.g. {debian} on Debian, {alma} on AlmaLinux)"


def table(config: Config, builds: tuple[SdistBuild, ...], machine: str) -> tuple[str, dict[str, object]]:
    """The ``[tool.wheelbarrow]`` table as text (with its comments), and the values it holds."""
    values = target_values(config)
    names = [b.name for b in builds]
    values["build-from-source"] = names
    target = f"CPython {config.python} on manylinux (glibc <= {config.glibc}, {machine})"
    if config.targets:
        target = f"each of the targets {', '.join(config.targets)}"
    lines = [
        "[tool.wheelbarrow]",
        f"# Written by wheelbarrow init ({__version__}); every key is in the README's configuration reference.",
        *(f"{key} = {_toml_value(value)}" for key, value in values.items() if key != "build-from-source"),
        f"# Compiled from their sdists in the builder, for {target}:" if names else "",
        *(f"#   {b.name}: {REASONS.get(b.reason, b.reason)}" for b in builds),
        f"build-from-source = {_toml_value(names)}",
    ]
    lines[-1] += "" if names else f"  # the lock has a wheel of every package for {target}"
    if config.system_packages:
        values["system-packages"] = list(config.system_packages)
        lines.append(f"system-packages = {_toml_value(values['system-packages'])}")
    elif names:
        values["system-packages"] = []
        lines += [f"# TODO: the system packages {name} needs to compile{_hint(name, config)}" for name in names]
        lines.append("system-packages = []")
    needs = {n: RUNTIME_PACKAGE_HINTS[n].format(python=config.python) for n in names if n in RUNTIME_PACKAGE_HINTS}
    lines += [
        f"# TODO: {name} loads at run time what its wheel cannot carry: on Debian, add runtime-packages = "
        f'["{package}"] (see the README, "Libraries loaded at run time")'
        for name, package in needs.items()
    ]
    return "\n".join(line for line in lines if line) + "\n", values


def appended(old: bytes, block: str) -> bytes:
    """``old`` unchanged, then a blank line and ``block``, in the file's own line endings."""
    newline = b"\r\n" if b"\r\n" in old else b"\n"
    text = block.replace("\n", newline.decode()).encode()
    if not old.strip():
        return old + text
    if not old.endswith(newline):
        old += newline
    return old + (b"" if old.endswith(newline * 2) else newline) + text


def check_appended(project_dir: Path, new: bytes, values: Mapping[str, object]) -> None:
    """The appended file parses, its table holds exactly ``values``, and wheelbarrow accepts them."""
    where = f"{project_dir / 'pyproject.toml'} with [tool.wheelbarrow] appended"
    tip = "Add the [tool.wheelbarrow] table by hand (see the README's configuration reference)."
    tool = _shapes.toml(new, where, ConfigError, tip=tip).get("tool", {})
    if not isinstance(tool, dict) or tool.get("wheelbarrow") != dict(values):
        msg = f"{where} does not read back as the table wheelbarrow init wrote"
        raise ConfigError(msg, tip=tip)
    validated(project_dir, values)


def replace_text(path: Path, old: bytes, new: bytes) -> None:
    """Write ``new`` over ``path`` atomically (beside it, then os.replace), unless it no longer holds ``old``."""
    target = Path(os.path.realpath(path))  # a symlinked pyproject.toml is written through, the link kept
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(new)
            stream.flush()
            os.fsync(stream.fileno())
        info = target.stat()
        Path(partial).chmod(info.st_mode & 0o7777)
        with contextlib.suppress(PermissionError):  # only root can give it away; then it keeps the owner
            os.chown(partial, info.st_uid, info.st_gid)
        if target.read_bytes() != old:
            msg = f"{path} changed while wheelbarrow init was reading the lock; it was left as it is"
            raise ConfigError(msg, tip="Run wheelbarrow init again.")
        Path(partial).replace(target)
    finally:
        Path(partial).unlink(missing_ok=True)


def create_new(path: Path, text: str) -> bool:
    """Write a new file atomically; False, with nothing written, when ``path`` exists (even if it appeared now)."""
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        Path(partial).chmod(0o644)  # mkstemp makes it private; a noxfile is for all
        try:
            os.link(partial, path)  # fails if the name exists: never replaces a file
        except FileExistsError:
            return False
        return True
    finally:
        Path(partial).unlink(missing_ok=True)


def init_project(
    config: Config, log: Log, *, machine: str, cache: Cache | None = None, lister: Lister | None = None
) -> Initialized:
    """Add ``[tool.wheelbarrow]`` to pyproject.toml and write noxfile.py, each only where there is none."""
    pyproject, noxfile = config.project_dir / "pyproject.toml", config.project_dir / "noxfile.py"
    old = _shapes.read_file(pyproject, ConfigError, tip="pyproject.toml must be a regular file you can read.")
    want_table = not has_table(old, str(pyproject))
    want_noxfile = not os.path.lexists(noxfile)
    builds: tuple[SdistBuild, ...] = ()
    if want_table:  # everything is decided before anything is written: a failure leaves the project as it was
        real = Path(os.path.realpath(pyproject))
        if config.project_dir.resolve() not in real.parents:
            msg = f"{pyproject} is a link to {real}, outside the project: wheelbarrow init writes only in the project"
            raise ConfigError(msg, tip="Add the table to that file yourself, or make pyproject.toml a plain file.")
        lock = _lock.read_lock(config, log, machine=machine, cache=cache)
        if lister is None and lock.kind != "uv" and not all(p.files for p in lock.packages):
            lister = fetch_lister(config, lock, log, machine)
        lock = with_files(lock, log, lister)
        found: dict[str, SdistBuild] = {}  # with targets, what any of them compiles
        for each in config.per_target or (config,):
            for build in make_plan(each, lock, machine=each.arch if each.target else machine).sdist_builds:
                found.setdefault(build.name, build)
        builds = tuple(found.values())
        block, values = table(config, builds, machine)
        new = appended(old, block)
        check_appended(config.project_dir, new, values)
    # the noxfile first: a new file is easy to take back
    wrote_noxfile = want_noxfile and create_new(noxfile, noxfile_text(source_requirement()))
    if want_table:
        try:
            replace_text(pyproject, old, new)
        except BaseException:
            if wrote_noxfile:
                noxfile.unlink(missing_ok=True)  # all or nothing: the project is left as it was
            raise
        log.info(f"{pyproject}: [tool.wheelbarrow] added (build-from-source: {_names(builds)})")
    else:
        log.warning(f"{pyproject} already has a [tool.wheelbarrow] table: left as it is")
    if wrote_noxfile:
        log.info(f"{noxfile}: written (nox -s build_wheels; nox installs wheelbarrow from its script block)")
    else:
        want_noxfile = False
        log.warning(f"{noxfile} exists: left as it is (the README shows the lines that use wheelbarrow's sessions)")
    if want_table and builds and not config.system_packages:
        log.warning("fill in system-packages in [tool.wheelbarrow] (see the TODO lines), then: nox -s build_wheels")
    if not (want_table or want_noxfile):
        log.info("nothing to do: wheelbarrow init writes only what a project does not have yet")
    return Initialized(pyproject, noxfile, want_table, want_noxfile, tuple(b.name for b in builds))


def _names(builds: tuple[SdistBuild, ...]) -> str:
    return ", ".join(f"{b.name} ({b.reason})" for b in builds) or "none"


def stage_init(run: Run) -> None:
    """The ``init`` command's one stage."""
    init_project(run.config, run.log, machine=run.machine, cache=run.cache)
