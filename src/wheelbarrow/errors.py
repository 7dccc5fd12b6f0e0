"""The one error hierarchy of wheelbarrow.

Every foreseeable failure is a :class:`WheelbarrowError`: it carries a message
that says what failed and why, and a ``tip`` that says what to do next. Only
the CLI catches it: it prints both lines and exits with the subclass's
``return_code`` (the nox helpers run the CLI, and end the session when it
fails). Anything else that reaches the CLI is a bug: it says "internal error",
saves the traceback and exits with :data:`INTERNAL_ERROR`.
"""

from __future__ import annotations

__all__ = [
    "BootstrapError",
    "BuildError",
    "CompileError",
    "ConfigError",
    "EngineCommandError",
    "EngineError",
    "EngineMissingError",
    "EngineStoppedError",
    "FetchError",
    "FileSystemError",
    "HashMismatchError",
    "ImageBuildError",
    "IndexAuthError",
    "IndexTLSError",
    "IndexUnreachableError",
    "Interrupted",
    "LockError",
    "MissingLockError",
    "NoLockedFileError",
    "ProjectNotFoundError",
    "PureWheelBuiltError",
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


class IndexUnreachableError(FetchError):
    """An index, or a file it links, cannot be reached."""


class IndexAuthError(FetchError):
    """An index answered 401 or 403."""


class IndexTLSError(FetchError):
    """TLS verification failed, or pip's CA bundle or client certificate cannot be used."""


class ProjectNotFoundError(FetchError):
    """No configured index has the project."""


class NoLockedFileError(HashMismatchError):
    """The index has the project, but no file with a locked sha256."""


class EngineError(WheelbarrowError):
    """The container engine cannot be used."""

    return_code = 6


class EngineCommandError(EngineError):
    """An engine command (tag, save, push, cp, exec ...) failed; ``output`` is what it printed."""

    def __init__(self, message: str, *, tip: str = "", output: str = "", returncode: int = 1) -> None:
        super().__init__(message, tip=tip)
        self.output = output
        self.returncode = returncode

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


class ImageBuildError(EngineError):
    """A Dockerfile build failed (a step of the Dockerfile, not the engine itself)."""

    return_code = 13


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


class PureWheelBuiltError(BuildError):
    """cibuildwheel built a pure-Python wheel where a platform wheel was expected."""


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


class FileSystemError(WheelbarrowError):
    """A file or directory could not be read or written: a full disk, permissions, a read-only file system."""

    return_code = 12


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is: children stopped, containers and work removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Exit codes that are not a WheelbarrowError: an unforeseen error (a bug), and signals (128 + number).
INTERNAL_ERROR = 70
