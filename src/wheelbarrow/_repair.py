"""Stage 5, repair: ``auditwheel repair`` turns a platform wheel into a manylinux one.

The repair itself runs inside the builder container (cibuildwheel's repair
step runs :func:`repair_command`). This module owns what the repair must
produce, checked by shape (no wheel, one wheel, several wheels are three
outcomes), and what a repaired wheel carries: its platform tag and the
libraries auditwheel grafted into ``<package>.libs/``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import assert_never

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from ._config import RepairPolicy
from .errors import BuildError, RepairProducedManyWheelsError, RepairProducedNoWheelError

#: Libraries of which a process must load only one copy: a second OpenSSL next to
#: the one Python's ssl module uses can crash (psycopg2's docs warn of it).
SINGLE_IN_PROCESS = ("libssl.so.*", "libcrypto.so.*")


def repair_command(exclude: tuple[str, ...] = (), plat: str = "") -> str:
    """The repair step cibuildwheel runs in the container for each platform wheel."""
    parts = ["auditwheel repair -w {dest_dir} {wheel}", *(f"--exclude {soname}" for soname in exclude)]
    return " ".join([*parts, f"--plat {plat}"] if plat else parts)


def parse_ldconfig(output: str) -> frozenset[str]:
    """Sonames in ``ldconfig -p`` output (``\tlibssl.so.3 (libc6,x86-64) => /lib/...``)."""
    return frozenset(line.split()[0] for line in output.splitlines() if "=>" in line and line.startswith(("\t", " ")))


def base_exclusions(
    policy: RepairPolicy, runtime_sonames: frozenset[str], packaged: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """What not to graft: single-in-process libraries the runtime base already provides and, whatever the
    policy, the libraries of ``runtime-packages`` (``packaged``), which are in the runtime image on purpose."""
    match policy:
        case "vendor-all":
            single: set[str] = set()
        case "exclude-base":
            single = {s for s in runtime_sonames if any(fnmatch(s, p) for p in SINGLE_IN_PROCESS)}
        case _:
            assert_never(policy)
    return tuple(sorted(single | (packaged & runtime_sonames)))


def referenced_sonames(wheel: Path, sonames: tuple[str, ...]) -> tuple[str, ...]:
    """Which of ``sonames`` the wheel's shared objects name (in their dynamic string tables)."""
    wanted = {s: b"\0" + s.encode() + b"\0" for s in sonames}
    found: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if ".so" in PurePosixPath(name).name:
                data = archive.read(name)
                found.update(s for s, needle in wanted.items() if needle in data)
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
