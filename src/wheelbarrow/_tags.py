"""The target's wheel tags: CPython X.Y on manylinux with the target's glibc and machine, best first."""

from __future__ import annotations

from packaging.tags import Tag, compatible_tags, cpython_tags

__all__ = ["manylinux_platforms", "target_tags"]


def manylinux_platforms(glibc: tuple[int, int], machine: str) -> list[str]:
    """manylinux platform tags a target with this glibc accepts, best first."""
    legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
    platforms: list[str] = []
    for minor in range(glibc[1], 4, -1):
        platforms.append(f"manylinux_2_{minor}_{machine}")
        if (2, minor) in legacy:
            platforms.append(f"{legacy[(2, minor)]}_{machine}")
    return platforms


def target_tags(python: str, glibc: tuple[int, int], machine: str) -> list[Tag]:
    version = tuple(int(p) for p in python.split("."))
    platforms = manylinux_platforms(glibc, machine)
    return [*cpython_tags(version, platforms=platforms), *compatible_tags(version, platforms=platforms)]
