"""Stage 5, repair: ``auditwheel repair`` turns a platform wheel into a manylinux one.

The repair itself runs inside the builder container (cibuildwheel's repair
step runs :func:`repair_command`). This module owns what the repair must
produce, checked by shape (no wheel, one wheel, several wheels are three
outcomes), and what a repaired wheel carries: its platform tag and the
libraries auditwheel grafted into ``<package>.libs/``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import IO, assert_never

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from ._config import RepairPolicy
from ._elf import ELF_MAGIC, needed
from .errors import BuildError, RepairProducedManyWheelsError, RepairProducedNoWheelError, WheelhouseError

#: Libraries of which a process must load only one copy: a second OpenSSL next to
#: the one Python's ssl module uses can crash (psycopg2's docs warn of it).
SINGLE_IN_PROCESS = ("libssl.so.*", "libcrypto.so.*")
SPOOL_BYTES = 8 << 20  # an ELF file up to this size is read in memory, a larger one through a temporary file
_LIBPYTHON = re.compile(r"libpython3\.\d+t?\.so\.1\.0")


#: Where the repair step puts :data:`MERGED_USR_DPKG` (in the build container), first on auditwheel's PATH.
DPKG_SHIM = "/opt/wheelbarrow-dpkg"
#: ``dpkg -S`` for a merged /usr. auditwheel's SBOM asks dpkg which package each grafted library came from,
#: by the path it found; Debian bookworm lists some packages' files as /lib/... (liblzma5, libcom-err2,
#: libkeyutils1) though the loader finds them as /usr/lib/..., and dpkg, asked for the one spelling,
#: does not know the other: those packages were missing from the SBOM. Asked again with the other.
MERGED_USR_DPKG = (
    "#!/bin/sh",
    'if [ "$1" = -S ] && [ $# = 2 ]; then',
    '  /usr/bin/dpkg -S "$2" 2>/dev/null && exit 0',
    '  case "$2" in',
    '    /usr/*) exec /usr/bin/dpkg -S "$(echo "$2" | cut -c5-)" ;;',
    '    /*) exec /usr/bin/dpkg -S "/usr$2" ;;',
    "  esac",
    "  exit 1",
    "fi",
    'exec /usr/bin/dpkg "$@"',
)


def repair_command(exclude: tuple[str, ...] = (), plat: str = "") -> str:
    """The repair step cibuildwheel runs in the container (``sh -c``, after ``str.format``: no braces but
    its own) for each platform wheel: where the builder has dpkg, :data:`MERGED_USR_DPKG` goes first on
    PATH, then auditwheel repairs."""
    script = " ".join(f"'{line}'" for line in MERGED_USR_DPKG)
    shim = (
        f"test -x /usr/bin/dpkg && mkdir -p {DPKG_SHIM} && printf '%s\\n' {script} > {DPKG_SHIM}/dpkg"
        f" && chmod +x {DPKG_SHIM}/dpkg; "
    )
    parts = [f"PATH={DPKG_SHIM}:$PATH auditwheel repair -w {{dest_dir}} {{wheel}}"]
    parts += [f"--exclude {soname}" for soname in exclude]
    return shim + " ".join([*parts, f"--plat {plat}"] if plat else parts)


def parse_ldconfig(output: str) -> frozenset[str]:
    """Sonames in ``ldconfig -p`` output (``\tlibssl.so.3 (libc6,x86-64) => /lib/...``)."""
    return frozenset(line.split()[0] for line in output.splitlines() if "=>" in line and line.startswith(("\t", " ")))


def libpython(python: str) -> str:
    """The soname of CPython's shared library: ``libpython3.11.so.1.0``."""
    return f"libpython{python}.so.1.0"


def base_exclusions(
    policy: RepairPolicy, runtime_sonames: frozenset[str], packaged: frozenset[str] = frozenset(), python: str = ""
) -> tuple[str, ...]:
    """What not to graft: single-in-process libraries the runtime base already provides and, whatever the
    policy, the libraries of ``runtime-packages`` (``packaged``), which are in the runtime image on purpose.

    With ``python``, libpython is excluded too, whatever the policy. auditwheel never grafts it; left to
    itself it deletes the dependency and moves an executable that embeds Python (uWSGI's) out of the
    scripts folder behind a shim, after which the executable cannot start and, started, would not find
    the venv. Excluded, the executable stays where pip installs it (``<venv>/bin``) and names the
    interpreter's library, which the runtime base provides (an extension module never names it).
    """
    match policy:
        case "vendor-all":
            single: set[str] = set()
        case "exclude-base":
            single = {s for s in runtime_sonames if any(fnmatch(s, p) for p in SINGLE_IN_PROCESS)}
        case _:
            assert_never(policy)
    embedded = {libpython(python)} if python else set()
    return tuple(sorted(single | embedded | (packaged & runtime_sonames)))


def _search(stream: IO[bytes], wanted: dict[str, bytes], chunk: int = 1 << 20) -> set[str]:
    """Which needles occur in ``stream``, read a chunk at a time (a large ELF file is never held whole)."""
    overlap = max((len(n) for n in wanted.values()), default=1) - 1
    found: set[str] = set()
    tail = b""
    while block := stream.read(chunk):
        window = tail + block
        found.update(s for s, needle in wanted.items() if needle in window)
        tail = window[-overlap:] if overlap else b""
    return found


def referenced_sonames(wheel: Path, sonames: tuple[str, ...]) -> tuple[str, ...]:
    """Which of ``sonames`` the wheel's ELF files (shared objects and executables) link: their DT_NEEDED
    entries (a name a library only ``dlopen``s is not one). An ELF file without section headers, whose
    entries cannot be read, counts the names its bytes hold."""
    wanted = {s: b"\0" + s.encode() + b"\0" for s in sonames}
    found: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            with archive.open(info) as member, tempfile.SpooledTemporaryFile(SPOOL_BYTES) as copy:
                if member.read(4) != ELF_MAGIC:
                    continue
                copy.write(ELF_MAGIC)
                shutil.copyfileobj(member, copy)
                linked = needed(copy)
                if linked is None:
                    copy.seek(0)
                    found.update(_search(copy, wanted))
                else:
                    found.update(s for s in sonames if s in linked)
    return tuple(sorted(found))


@dataclass(frozen=True)
class RepairedWheel:
    path: Path
    platform_tag: str
    grafted: tuple[str, ...]
    expected_from_base: tuple[str, ...] = ()


def is_pure(filename: str) -> bool:
    _, _, _, tags = parse_wheel_filename(filename)
    return all(tag.platform == "any" for tag in tags)


def platform_tag(filename: str) -> str:
    """The platform part of a wheel's file name (``manylinux_2_34_x86_64``, ``any``)."""
    return filename.removesuffix(".whl").split("-")[-1]


def grafted_libraries(wheel: Path) -> tuple[str, ...]:
    """Shared libraries auditwheel copied into the wheel (``<name>.libs/*.so*``)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    return tuple(
        sorted(
            PurePosixPath(n).name
            for n in names
            if len(PurePosixPath(n).parts) == 2 and PurePosixPath(n).parts[0].endswith(".libs") and ".so" in n
        )
    )


def one_repaired_wheel(out_dir: Path, what: str, exclude: tuple[str, ...] = ()) -> RepairedWheel:
    """The single wheel a repair wrote into ``out_dir``, or the error for its shape."""
    match sorted(out_dir.glob("*.whl")):
        case []:
            msg = f"repairing {what} produced no wheel in {out_dir}"
            tip = "Run 'auditwheel show' on the raw wheel in the builder; its policy may be too strict for the base."
            raise RepairProducedNoWheelError(msg, tip=tip)
        case [repaired]:
            try:
                parse_wheel_filename(repaired.name)
            except (InvalidWheelFilename, InvalidVersion) as err:
                msg = f"building {what} made a wheel whose file name is not valid: {repaired.name} ({err})"
                raise BuildError(msg, tip="Check the build backend's name and version settings.") from err
            grafted = grafted_libraries(repaired)
            return RepairedWheel(repaired, platform_tag(repaired.name), grafted, referenced_sonames(repaired, exclude))
        case several:
            names = ", ".join(p.name for p in several)
            msg = f"repairing {what} produced {len(several)} wheels: {names}"
            raise RepairProducedManyWheelsError(
                msg, tip="A repair must give exactly one wheel; check the repair command."
            )


def check_left_to_base(built: list[tuple[str, RepairedWheel]], provided: frozenset[str], base: str) -> None:
    """Refuse a wheelhouse whose wheels need, from the runtime base, a library it lacks (libpython, for an
    executable that embeds Python, on a base with no shared libpython), before any image is built."""
    missing = {name: [s for s in wheel.expected_from_base if s not in provided] for name, wheel in built}
    lacking = {name: sonames for name, sonames in missing.items() if sonames}
    if not lacking:
        return
    said = "; ".join(f"{name} needs {', '.join(sonames)}" for name, sonames in sorted(lacking.items()))
    msg = f"the runtime base {base} lacks libraries the built wheels leave to it: {said}"
    pythons = sorted(
        {s.removesuffix(".so.1.0") for sonames in lacking.values() for s in sonames if _LIBPYTHON.match(s)}
    )
    debian = f" (on Debian: {', '.join(pythons)})" if pythons else ""
    tip = (
        f"Add the system packages that provide them to runtime-packages in [tool.wheelbarrow]{debian}, "
        "or use a runtime base that has them."
    )
    raise WheelhouseError(msg, tip=tip)
