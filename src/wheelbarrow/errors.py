"""The one error hierarchy of wheelbarrow.

Every foreseeable failure is a :class:`WheelbarrowError`: it carries a message
that says what failed and why, and a ``tip`` that says what to do next. Only
the CLI and the nox helpers catch it; they print both lines and exit with the
subclass's ``return_code``.
"""

from __future__ import annotations

__all__ = [
    "BootstrapError",
    "BuildError",
    "CompileError",
    "ConfigError",
    "EngineError",
    "EngineMissingError",
    "EngineStoppedError",
    "FetchError",
    "HashMismatchError",
    "LockError",
    "MissingLockError",
    "RepairError",
    "RepairProducedManyWheelsError",
    "RepairProducedNoWheelError",
    "StaleLockError",
    "ToolMissingError",
    "UnhashedRequirementError",
    "VerifyError",
    "WheelbarrowError",
    "WheelhouseError",
]


class WheelbarrowError(Exception):
    """Root of every error wheelbarrow raises on purpose."""

    return_code: int = 1

    def __init__(self, message: str, *, tip: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip

    def __str__(self) -> str:
        return self.message


class ConfigError(WheelbarrowError):
    """The ``[tool.wheelbarrow]`` table, the environment or a flag is wrong."""

    return_code = 2


class ToolMissingError(WheelbarrowError):
    """A host tool wheelbarrow needs (poetry, cibuildwheel, debootstrap...) is absent."""

    return_code = 3


class LockError(WheelbarrowError):
    """The lock cannot be read or cannot be trusted."""

    return_code = 4


class MissingLockError(LockError):
    """No lock file was found."""


class StaleLockError(LockError):
    """The lock does not match pyproject.toml any more."""


class UnhashedRequirementError(LockError):
    """A locked requirement carries no sha256 hash."""


class FetchError(WheelbarrowError):
    """An artifact could not be downloaded."""

    return_code = 5


class HashMismatchError(FetchError):
    """A downloaded or cached file does not have the locked sha256."""


class EngineError(WheelbarrowError):
    """The container engine cannot be used."""

    return_code = 6


class EngineMissingError(EngineError):
    """No container engine binary on PATH."""


class EngineStoppedError(EngineError):
    """The engine binary is there but its daemon does not answer."""


class BootstrapError(WheelbarrowError):
    """A local base image could not be made."""

    return_code = 7


class BuildError(WheelbarrowError):
    """A wheel could not be built."""

    return_code = 8


class CompileError(BuildError):
    """Compiling an sdist failed (often: a system package is missing)."""


class RepairError(WheelbarrowError):
    """auditwheel could not turn a platform wheel into a manylinux wheel."""

    return_code = 9


class RepairProducedNoWheelError(RepairError):
    """The repair step wrote no wheel."""


class RepairProducedManyWheelsError(RepairError):
    """The repair step wrote more than one wheel."""


class WheelhouseError(WheelbarrowError):
    """The wheelhouse could not be assembled or is inconsistent."""

    return_code = 10


class VerifyError(WheelbarrowError):
    """The runtime image failed one of its checks."""

    return_code = 11
