"""Build scheduling: what is already built comes from the cache, the rest builds in parallel.

Each build (an sdist, or the project) has a key covering everything that can
change its bytes: the sdist's sha256 (or the project's source tree), the
builder image id (its base, system packages, build requirements and tools:
cibuildwheel's container, auditwheel, patchelf), the Python tag and machine,
cibuildwheel's whole configuration, the SOURCE_DATE_EPOCH, the libraries left
to the runtime base, and the versions of wheelbarrow and cibuildwheel. A hit
is verified by sha256 before use. Misses build in parallel, at most ``jobs``
at a time, each in its own container, their output prefixed by name.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ._build import (
    BuildContext,
    build_project_platform,
    build_project_pure,
    build_sdist,
    cibuildwheel_env,
    sdist_epoch,
)
from ._cache import IGNORED_IN_PROJECT, Cache, key_of, tree_digest
from ._cmd import Cancel, CommandFailed, run, stop_all
from ._fetch import Fetched
from ._log import Log
from ._repair import RepairedWheel
from ._version import __version__
from .errors import BuildError, EngineError, EngineStoppedError, RepairError, ToolMissingError, WheelbarrowError


@dataclass(frozen=True)
class Built:
    sdist: Fetched | None  # None: the project itself
    wheel: RepairedWheel
    from_cache: bool
    seconds: float = 0.0  # how long its build took (0 when it came from a cache)

    @property
    def name(self) -> str:
        return self.sdist.name if self.sdist else "project"


def _common(ctx: BuildContext) -> dict[str, Any]:
    return {
        "builder": ctx.builder.image_id,
        "python": ctx.plan.python_tag,
        "machine": ctx.plan.machine,
        "exclude": list(ctx.exclude),
        "wheelbarrow": __version__,
        "cibuildwheel": metadata.version("cibuildwheel"),
    }


def _stable_env(ctx: BuildContext, epoch: int) -> dict[str, str]:
    env = cibuildwheel_env(ctx.plan, ctx.builder, ctx.engine, epoch, ctx.exclude)
    env["CIBW_CONTAINER_ENGINE"] = env["CIBW_CONTAINER_ENGINE"].replace(" ".join(ctx.engine.label_args()), "")
    return env


def sdist_key(sdist: Fetched, ctx: BuildContext, cache: Cache | None = None) -> str:
    epoch = sdist_epoch(sdist.path, cache, sdist.sha256)
    return key_of(
        {"kind": "sdist", "sdist": sdist.sha256, "epoch": epoch, "env": _stable_env(ctx, epoch), **_common(ctx)}
    )


def project_key(ctx: BuildContext) -> str:
    project = ctx.plan.project
    return key_of(
        {
            "kind": "project",
            "tree": tree_digest(project.source, (*IGNORED_IN_PROJECT, ctx.plan.wheelhouse.name)),
            "engine": project.engine,
            "epoch": ctx.epoch,
            "env": _stable_env(ctx, ctx.epoch) if project.engine == "cibuildwheel" else {},
            "scm": scm_state(project.source, ctx.log) if project.version is None else "",
            **_common(ctx),
        }
    )


def scm_state(project: Path, log: Log) -> str:
    """What a dynamic version is made of (the commit, the nearest tag, a dirty tree), asked of git on the
    host: a new tag or commit rebuilds the project's wheel even when no file changed."""
    try:
        result = run(["git", "describe", "--tags", "--long", "--always", "--dirty"], log, cwd=project, check=False)
    except ToolMissingError:
        return "no git"
    return result.output.strip() if result.returncode == 0 else "not a git checkout"


def _from_cache(cache: Cache, key: str) -> RepairedWheel | None:
    hit = cache.wheel(key)
    if hit is None:
        return None
    return RepairedWheel(hit.path, hit.platform_tag, hit.grafted, hit.expected_from_base)


def _from_shared(ctx: BuildContext, cache: Cache, key: str) -> RepairedWheel | None:
    hit = ctx.shared.fetch_wheel(key, cache) if ctx.shared else None
    return None if hit is None else RepairedWheel(hit.path, hit.platform_tag, hit.grafted, hit.expected_from_base)


def _build_one(sdist: Fetched | None, ctx: BuildContext, cache: Cache, key: str) -> RepairedWheel:
    name = sdist.name if sdist else ctx.plan.project.name
    ctx = dataclasses.replace(ctx, log=ctx.log.prefixed(name))
    try:
        if sdist is not None:
            ctx.log.info(f"building {sdist.filename} with cibuildwheel (network off)")
            # the epoch its key was made with, as the key read it (from the cache's memory, or the sdist)
            wheel = build_sdist(sdist, ctx, epoch=sdist_epoch(sdist.path, cache, sdist.sha256))
        else:
            ctx.log.info(f"building the project ({ctx.plan.project.engine}, network off)")
            wheel = build_project_pure(ctx) if ctx.plan.project.engine == "pure" else build_project_platform(ctx)
    except (WheelbarrowError, CommandFailed) as err:
        _engine_still_there(ctx, name, err)
        raise
    meta = {
        "platform_tag": wheel.platform_tag,
        "grafted": wheel.grafted,
        "expected_from_base": wheel.expected_from_base,
    }
    stored = cache.store_wheel(key, wheel.path, meta)
    if ctx.shared:
        ctx.shared.store_wheel(key, stored)  # only what this run built is written to the shared cache
    return dataclasses.replace(wheel, path=stored.path)


def _engine_still_there(ctx: BuildContext, name: str, err: Exception) -> None:
    """A build that failed because the engine went away is the engine's failure, not the build's."""
    try:
        ctx.engine.check()
    except EngineError as gone:
        msg = f"the {ctx.engine.name} engine stopped while {name} was building: {gone.message}"
        raise EngineStoppedError(
            msg, tip="Restart the daemon and run again; finished builds are in the cache."
        ) from err


def build_all(sdists: tuple[Fetched, ...], ctx: BuildContext, cache: Cache, jobs: int) -> list[Built]:
    """Every sdist and the project, from the cache or built; in input order, the project last."""
    todo: list[tuple[Fetched | None, str]] = [(s, sdist_key(s, ctx, cache)) for s in sdists]
    todo.append((None, project_key(ctx)))
    results: dict[int, Built] = {}
    misses: list[int] = []
    for index, (sdist, key) in enumerate(todo):
        hit = _from_cache(cache, key) or _from_shared(ctx, cache, key)
        if hit is not None:
            results[index] = Built(sdist, hit, from_cache=True)
            ctx.log.info(f"{sdist.filename if sdist else 'the project'}: up to date in the cache ({key[:12]})")
        else:
            misses.append(index)
    if misses:
        misses.sort(key=lambda i: _expected_seconds(todo[i][0], cache), reverse=True)  # the longest first
        ctx.log.info(f"building {len(misses)} wheel(s), {min(jobs, len(misses))} at a time")
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="build") as pool:
            futures: dict[Future[tuple[RepairedWheel, float]], int] = {
                pool.submit(Cancel.carried(_timed), todo[i][0], ctx, cache, todo[i][1]): i for i in misses
            }
            try:
                wait(futures)  # every build runs to its end: one run names every build that fails
            except KeyboardInterrupt:
                for future in futures:
                    future.cancel()
                stop_all()  # the builds in the other threads stop too, and clean up their containers
                raise
            failed: list[tuple[str, BaseException]] = []
            for future, index in futures.items():
                error = future.exception()
                if error is None:
                    wheel, seconds = future.result()
                    results[index] = Built(todo[index][0], wheel, from_cache=False, seconds=seconds)
                    cache.store_memo(_seconds_key(todo[index][0]), round(seconds, 2))
                else:
                    sdist = todo[index][0]
                    failed.append((sdist.name if sdist else "the project", error))
            if failed:
                raise one_error(failed)
    return [results[i] for i in range(len(todo))]


def _seconds_key(sdist: Fetched | None) -> str:
    return key_of({"build-seconds": sdist.name if sdist else "the project"})


def _expected_seconds(sdist: Fetched | None, cache: Cache) -> float:
    """How long a build is expected to take, to start the longest first (with fewer jobs than builds, the
    longest started last keeps a core idle at the end): its last build's seconds, else a guess from the
    sdist's size (about a second per 100 kB)."""
    known = cache.memo(_seconds_key(sdist))
    if isinstance(known, int | float) and not isinstance(known, bool) and 0 <= known < 1e6:
        return float(known)
    return sdist.path.stat().st_size / 1e5 if sdist is not None and sdist.path.is_file() else 1.0


def _timed(sdist: Fetched | None, ctx: BuildContext, cache: Cache, key: str) -> tuple[RepairedWheel, float]:
    """:func:`_build_one`'s wheel, and the build's own seconds (from when its thread took it up)."""
    began = time.monotonic()
    wheel = _build_one(sdist, ctx, cache, key)
    return wheel, time.monotonic() - began


def one_error(failed: list[tuple[str, BaseException]]) -> BaseException:
    """What a run with failed builds raises: the failure when there is one; the engine's failure when the
    engine went away (every build then fails for that one reason); else one error naming every build
    that failed, each with its cause lines, and each different tip once."""
    errors = [error for _, error in failed]
    first = errors[0]
    if len(errors) == 1:
        return first
    if stopped := next((e for e in errors if isinstance(e, EngineError)), None):
        return stopped
    if not all(isinstance(e, WheelbarrowError) for e in errors):
        return next(e for e in errors if not isinstance(e, WheelbarrowError))  # a bug: shown as one
    ours = [e for e in errors if isinstance(e, WheelbarrowError)]
    if all(type(e) is type(first) for e in ours):
        kind: type[WheelbarrowError] = type(ours[0])
    else:
        kind = RepairError if all(isinstance(e, RepairError) for e in ours) else BuildError
    said = "\n".join(f"[{name}] {error}" for name, error in failed)
    tips = "\n".join(dict.fromkeys(e.tip for e in ours if e.tip))
    return kind(f"{len(failed)} builds failed:\n{said}", tip=tips)
