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
from pathlib import Path, PurePosixPath

from packaging.utils import parse_wheel_filename

from .errors import RepairProducedManyWheelsError, RepairProducedNoWheelError


def repair_command() -> str:
    """The repair step cibuildwheel runs in the container for each platform wheel."""
    return "auditwheel repair -w {dest_dir} {wheel}"


@dataclass(frozen=True)
class RepairedWheel:
    path: Path
    platform_tag: str
    grafted: tuple[str, ...]


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


def one_repaired_wheel(out_dir: Path, what: str) -> RepairedWheel:
    """The single wheel a repair wrote into ``out_dir``, or the error for its shape."""
    match sorted(out_dir.glob("*.whl")):
        case []:
            msg = f"repairing {what} produced no wheel in {out_dir}"
            tip = "Run 'auditwheel show' on the raw wheel in the builder; its policy may be too strict for the base."
            raise RepairProducedNoWheelError(msg, tip=tip)
        case [repaired]:
            return RepairedWheel(repaired, platform_tag(repaired.name), grafted_libraries(repaired))
        case several:
            names = ", ".join(p.name for p in several)
            msg = f"repairing {what} produced {len(several)} wheels: {names}"
            raise RepairProducedManyWheelsError(
                msg, tip="A repair must give exactly one wheel; check the repair command."
            )
