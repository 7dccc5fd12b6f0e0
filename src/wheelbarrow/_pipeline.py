"""The pipeline, declared as data.

Every command is a tuple of :class:`Stage` run in order by :func:`execute`:
:data:`INIT`, :data:`PLAN`, :data:`BUILD`, :data:`IMAGE`, :data:`VERIFY`,
:data:`PUBLISH`, :data:`MERGE` (:data:`MERGE_PUSH`), :data:`BOOTSTRAP`, :data:`CACHE`. The CLI
calls :func:`execute_all` (:func:`execute` once per target) for each of its commands, and the nox
helpers run the CLI, so both run the same pipeline.
Each stage is a function of the :class:`Run` that reads what earlier stages
left on it and adds its own; a stage declares whether it needs the project's
lock (one run per project at a time) and the container engine (checked once,
first).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from . import (
    _bootstrap,
    _build,
    _fetch,
    _guard,
    _image,
    _init,
    _lock,
    _manifest,
    _plan,
    _repair,
    _schedule,
    _targets,
    _verify,
    _wheelhouse,
)
from ._cache import Cache, sha256_of
from ._cmd import Cancel, Cancelled
from ._config import Config
from ._engine import Engine
from ._fetch import Fetched
from ._guard import tempdir
from ._log import Log
from ._parallel import GRACE_SECONDS
from ._repair import platform_tag
from ._shared import SharedCache
from .errors import BuildError, FileSystemError, VerifyError, WheelbarrowError

if TYPE_CHECKING:  # publish and merge load the SBOM library: imported by their stages, not by every command
    from . import _merge, _publish

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """Per-command options that are not configuration (they say what to do this time, not how)."""

    skip_image: bool = False
    simple_index: bool = False
    push: str | None = None
    no_index: bool = False  # publish --push of targets: the images only (merge --push makes the indexes)
    suite: str | None = None
    parts: tuple[Path, ...] = ()  # merge: the dist/ folders of the jobs that published the targets
    prune_older_than: float | None = None  # cache: None shows, a number of days prunes


@dataclass
class Run:
    """What the stages of one run share."""

    config: Config
    log: Log
    engine: Engine
    cache: Cache
    machine: str = ""  # the target's architecture (config.arch)
    work: Path = field(default_factory=lambda: tempdir("work"))
    lock: _lock.Lock | None = None
    plan: _plan.BuildPlan | None = None
    index_wheels: tuple[Fetched, ...] = ()
    sdists: tuple[Fetched, ...] = ()
    build_requirements: tuple[Path, ...] = ()
    builder: _build.Builder | None = None
    builder_base: str = ""
    runtime_base: str = ""
    runtime_base_id: str = ""
    runtime_base_digest: str = ""  # the configured runtime base as pulled ("" when it is local)
    builder_base_digest: str = ""
    exclude: tuple[str, ...] = ()
    base_sonames: frozenset[str] = frozenset()  # what the runtime base (with its runtime-packages) provides
    epoch: int = 0
    built: list[_schedule.Built] = field(default_factory=list)
    manifest: _manifest.Manifest | None = None
    summary: list[dict[str, object]] = field(default_factory=list)
    image: _image.Image | None = None
    options: Options = field(default_factory=Options)
    published: _publish.Published | None = None
    merged: _merge.Merged | None = None
    cache_info: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: tuple[_verify.Check, ...] = ()
    candidate: str = ""  # the tag a new runtime image waits under until it is verified
    verified: str = ""  # the image verify checked
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage of this run
    wall: float = 0.0  # seconds of the whole run: less than the stages' sum when some ran at once

    def __post_init__(self) -> None:
        self.machine = self.machine or self.config.arch

    def need(self, value: T | None, stage: str) -> T:
        """What an earlier stage left; its absence is a wrongly declared pipeline, said as such."""
        if value is None:
            msg = f"the '{stage}' stage must run before this one"
            raise WheelbarrowError(msg, tip="Report this: a pipeline is declared in the wrong order.")
        return value

    def need_plan(self) -> _plan.BuildPlan:
        return self.need(self.plan, "plan")


def stage_engine(run: Run) -> None:
    version = run.engine.check()
    run.log.info(f"{run.engine.name} engine {version}")
    if run.config.foreign:  # emulation was checked for every target before the first ran (execute_all)
        run.log.info(f"target {run.config.target}: {run.config.platform} containers, under emulation on this machine")
    run.engine.sweep()
    run.engine.sweep_images(_image.CANDIDATES)


def stage_outputs(run: Run) -> None:
    """Before any work: the wheelhouse is one wheelbarrow may replace (absent, empty or its own)."""
    config = run.config
    _guard.check_output(config.wheelhouse, "wheelhouse", "wheelhouse", (config.project_dir, config.cache_dir))


def stage_lock(run: Run) -> None:
    run.lock = _lock.read_lock(run.config, run.log, machine=run.machine, cache=run.cache)
    run.log.info(f"{len(run.lock.packages)} locked runtime packages from {run.lock.source.name} ({run.lock.kind})")


def stage_plan(run: Run) -> None:
    run.plan = _plan.make_plan(run.config, run.need(run.lock, "lock"), machine=run.machine)
    run.log.info(run.plan.describe())


def stage_fetch(run: Run) -> None:
    """The sdists to build and every build's requirements: what the builder and the builds wait for."""
    plan = run.need_plan()
    found = _fetch.fetch_items(plan.sdist_builds, plan, run.cache, run.log)
    run.sdists = tuple(found[b] for b in plan.sdist_builds)
    requirement_sets = [_fetch.build_requires_remembered(s, run.cache) for s in run.sdists]
    requirement_sets.append(_fetch.build_requires_of_project(plan.project.source))
    dest = run.work / "buildreqs"
    run.build_requirements = _fetch.fetch_build_requirements(plan, requirement_sets, dest, run.cache, run.log)
    run.log.info(f"build requirements: {', '.join(p.name for p in run.build_requirements)}")


def stage_wheels(run: Run) -> None:
    """The index's wheels of the lock, fetched while the sdists build (nothing waits for them but the
    wheelhouse)."""
    plan = run.need_plan()
    found = _fetch.fetch_items(plan.index_wheels, plan, run.cache, run.log)
    run.index_wheels = tuple(found[w] for w in plan.index_wheels)


def stage_bases(run: Run) -> None:
    """Both base images, and what the runtime base provides that the repair must not graft."""
    run.runtime_base = _bootstrap.resolve_runtime_base(run.config, run.engine, run.log)
    run.runtime_base_id = run.engine.image_id(run.runtime_base) or ""
    run.builder_base = _bootstrap.resolve_builder_base(run.config, run.engine, run.log, runtime=run.runtime_base)
    run.runtime_base_digest = _bootstrap.pulled_digest(run.config.runtime_base, run.engine)
    run.builder_base_digest = _bootstrap.pulled_digest(run.builder_base, run.engine)

    facts = _image.base_facts(run.engine, run.runtime_base, run.cache)  # asked once per base, one cache key
    provided = _repair.parse_ldconfig(facts)
    packaged = _image.packaged_sonames(run.engine, run.runtime_base, run.config.runtime_packages, run.cache)
    run.exclude = _repair.base_exclusions(run.config.repair_policy, provided, packaged, run.config.python)
    run.base_sonames = provided | packaged
    run.log.info(f"builder base {run.builder_base}; runtime base {run.runtime_base}")
    left = ", ".join(run.exclude) or "nothing"
    run.log.info(f"repair policy {run.config.repair_policy}: leaving {left} to the runtime base")


def stage_builder(run: Run) -> None:
    plan = run.need_plan()
    pure = plan.project.engine == "pure" or plan.project.either  # either: a pure build is the fallback
    project_requires = _fetch.build_requires_of_project(plan.project.source) if pure else ()
    shared = SharedCache.of(run.config, run.engine, run.log)
    builder = _build.prepare_builder(
        plan, run.builder_base, run.build_requirements, project_requires, run.engine, run.log, shared
    )
    run.builder = _build.with_installer(builder, run.engine, run.cache)
    run.log.info(f"builder image {run.builder.tag} ({run.builder.image_id[:19]})")


def stage_build(run: Run) -> None:
    plan, builder = run.need_plan(), run.need(run.builder, "builder")
    run.epoch = _build.source_date_epoch(plan.project.source, run.log)
    shared = SharedCache.of(run.config, run.engine, run.log)
    ctx = _build.BuildContext(plan, builder, run.engine, run.work, run.log, run.epoch, run.exclude, shared)
    run.built = _schedule.build_all(run.sdists, ctx, run.cache, run.config.jobs)
    fresh = sum(not b.from_cache for b in run.built)
    run.log.info(f"{fresh} built, {len(run.built) - fresh} from the cache")
    if shared and fresh:  # what the wheels' keys depend on, for the next machine: the builder, its base, and
        # the runtime base with runtime-packages (each pushed only if wheelbarrow made it under a key)
        shared.store_images(builder.tag, run.builder_base, run.runtime_base)
    _repair.check_left_to_base([(b.name, b.wheel) for b in run.built], run.base_sonames, run.runtime_base)


def project_version(plan: _plan.BuildPlan, built: list[_schedule.Built]) -> str:
    """The project's version: pyproject's, or (a dynamic one) the version of the wheel its build made."""
    wheel = next(b.wheel.path.name for b in built if b.sdist is None)
    made = str(parse_wheel_filename(wheel)[1])
    if plan.project.version is not None and Version(plan.project.version) != Version(made):
        msg = f"the project's wheel {wheel} is version {made}, but pyproject.toml says {plan.project.version}"
        raise BuildError(msg, tip="Check the build backend's version settings.")
    return plan.project.version or made


def stage_wheelhouse(run: Run) -> None:
    plan, builder, lock = run.need_plan(), run.need(run.builder, "builder"), run.need(run.lock, "lock")
    entries: list[tuple[Path, _manifest.WheelEntry, str]] = []
    seconds: dict[str, float] = {}  # each built wheel's build time
    version = project_version(plan, run.built)
    for wheel in run.index_wheels:
        entry = _wheelhouse.entry_for(wheel.path, wheel.name, wheel.version, "index", platform_tag(wheel.filename))
        entries.append((wheel.path, entry, "index"))
    for built in run.built:
        sdist, repaired = built.sdist, built.wheel
        entry = _wheelhouse.entry_for(
            repaired.path,
            sdist.name if sdist else canonicalize_name(plan.project.name),
            sdist.version if sdist else version,
            "built",
            repaired.platform_tag,
            sdist=_manifest.FileRef(sdist.filename, sdist.sha256) if sdist else None,
            builder_image_id=builder.image_id,
            grafted_libraries=repaired.grafted,
            expected_from_base=repaired.expected_from_base,
        )
        entries.append((repaired.path, entry, "cache" if built.from_cache else "built"))
        seconds[entry.file] = round(built.seconds, 2)
    entries.sort(key=lambda item: item[1].name)
    run.manifest = _manifest.Manifest(
        project=_manifest.Project(plan.project.name, version),
        target=_manifest.Target(plan.python, plan.python_tag, plan.machine, f"{plan.glibc[0]}.{plan.glibc[1]}"),
        lock=_manifest.LockInfo(lock.source.name, lock.kind, sha256_of(lock.source)),
        runtime_base=_manifest.RuntimeBase(
            run.runtime_base,
            run.runtime_base_id,
            run.config.repair_policy,
            tuple(run.exclude),
            run.config.runtime_packages,
            run.runtime_base_digest,
        ),
        builder=_manifest.BuilderInfo(
            builder.tag, builder.image_id, run.builder_base, tuple(plan.system_packages), run.builder_base_digest
        ),
        source_date_epoch=run.epoch,
        build_requirements=tuple(_manifest.FileRef(p.name, sha256_of(p)) for p in run.build_requirements),
        wheels=tuple(e for _, e, _ in entries),
    )
    protected = (run.config.project_dir, run.config.cache_dir)
    changed = _wheelhouse.publish(plan.wheelhouse, [(p, e) for p, e, _ in entries], run.manifest, protected)
    run.log.info(f"wheelhouse {plan.wheelhouse}: {len(entries)} wheels{'' if changed else ' (unchanged)'}")
    run.summary = [
        {
            "wheel": e.file,
            "origin": origin,
            "platform": e.platform_tag,
            "size": e.size,
            "grafted": list(e.grafted_libraries),
            "from_base": list(e.expected_from_base),
            "build_seconds": seconds.get(e.file, 0.0),
        }
        for _, e, origin in entries
    ]


def stage_image(run: Run) -> None:
    run.candidate = _image.candidate_tag(run.engine)  # known before the build: removed even if it is cut short
    run.image = _image.build_image(run.config, run.engine, run.log, run.cache)


def stage_verify(run: Run) -> None:
    if run.image is not None:  # the candidate this run built, from this wheelhouse
        tag, manifest = run.image.candidate, run.image.manifest
    else:  # an image built before: it must exist, and be built from the wheelhouse that is here
        manifest, wheelhouse_sha = _wheelhouse.read_wheelhouse(run.config.wheelhouse)
        tag = _image.tag_of(run.config, manifest)
        if run.engine.image_id(tag) is None:
            msg = f"there is no image {tag} to verify"
            raise VerifyError(msg, tip="Build it first: nox -s image (or wheelbarrow image).")
        _image.check_built_from(run.engine, tag, wheelhouse_sha)
    style = run.config.runtime_style if run.image else _image.style_of(run.engine, tag, run.config, run.log)
    base = run.image.base if run.image else _image.runtime_base_of(run.config, manifest, run.engine, run.log)
    config = run.config
    checks = _verify.verify_image(
        run.engine,
        tag,
        base,
        manifest,
        run.log,
        run.cache,
        config.command,
        start=config.verify_start,
        distroless=style == "distroless",
        shown=run.image.tag if run.image else tag,
    )
    run.checks = tuple(checks)
    shown = run.image.tag if run.image else tag
    run.verified = shown
    run.log.info(f"image {shown}: all {len(checks)} checks passed (network off)")


def stage_tag(run: Run) -> None:
    _image.promote(run.need(run.image, "image"), run.engine, run.log)


def stage_publish(run: Run) -> None:
    from . import _publish  # noqa: PLC0415 - the SBOM library loads for the commands that write one

    options = run.options
    run.published = _publish.publish(
        run.config, run.engine, run.log, skip_image=options.skip_image, simple=options.simple_index, push=options.push
    )


def stage_merge(run: Run) -> None:
    from . import _merge  # noqa: PLC0415 - the SBOM library loads for the commands that write one

    run.merged = _merge.merge(run.config, run.options.parts, run.log, run.cache, push=run.options.push)


def stage_bootstrap(run: Run) -> None:
    _bootstrap.bootstrap(run.config, run.engine, run.log, suite=run.options.suite)


def stage_cache(run: Run) -> None:
    days = run.options.prune_older_than
    if days is not None:
        removed = run.cache.prune(days)
        run.log.info(f"removed {removed} cache entries from {run.config.cache_dir}")
    run.cache_info = run.cache.info()


@dataclass(frozen=True)
class Stage:
    name: str
    fn: Callable[[Run], None]
    needs_lock: bool = True  # holds the project's lock: one run per project at a time
    uses_engine: bool = False  # the engine is checked once, before the first such stage
    #: Runs at the same time as the stage after it: neither reads what the other leaves on the run.
    with_next: bool = False


LOCK = Stage("lock", stage_lock, needs_lock=False)
PLAN_STAGE = Stage("plan", stage_plan, needs_lock=False)
ENGINE = Stage("engine", stage_engine, uses_engine=True)
PLAN: tuple[Stage, ...] = (LOCK, PLAN_STAGE)
BUILD: tuple[Stage, ...] = (
    LOCK,
    PLAN_STAGE,
    Stage("outputs", stage_outputs),
    ENGINE,
    Stage("fetch", stage_fetch, with_next=True),  # the sdists and build requirements, and the bases, at once
    Stage("bases", stage_bases, uses_engine=True),
    Stage("builder", stage_builder, uses_engine=True),
    # The index's wheels come while the sdists build. wheels is first of the two: its error (a wrong hash
    # from the index) is the one said when both fail, as when it ran before the build.
    Stage("wheels", stage_wheels, with_next=True),
    Stage("build + repair", stage_build, uses_engine=True),
    Stage("wheelhouse", stage_wheelhouse),
)
IMAGE: tuple[Stage, ...] = (
    ENGINE,
    Stage("image", stage_image, uses_engine=True),
    Stage("verify", stage_verify, uses_engine=True),
    Stage("tag", stage_tag, uses_engine=True),
)
VERIFY: tuple[Stage, ...] = (ENGINE, Stage("verify", stage_verify, uses_engine=True))
PUBLISH: tuple[Stage, ...] = (ENGINE, Stage("publish", stage_publish, uses_engine=True))
MERGE: tuple[Stage, ...] = (Stage("merge", stage_merge),)
#: merge --push: the engine makes the indexes, pulls every platform back and verifies it.
MERGE_PUSH: tuple[Stage, ...] = (ENGINE, Stage("merge", stage_merge, uses_engine=True))
BOOTSTRAP: tuple[Stage, ...] = (ENGINE, Stage("bootstrap", stage_bootstrap, uses_engine=True))
CACHE: tuple[Stage, ...] = (Stage("cache", stage_cache, needs_lock=False),)
INIT: tuple[Stage, ...] = (Stage("init", _init.stage_init),)  # holds the project's lock: two inits cannot both append


#: The commands that run once per target when the project sets ``targets``.
PER_TARGET: tuple[tuple[Stage, ...], ...] = (PLAN, BUILD, IMAGE, VERIFY, PUBLISH, BOOTSTRAP)


def execute_all(
    config: Config, log: Log, stages: tuple[Stage, ...] = BUILD, options: Options | None = None
) -> list[Run]:
    """:func:`execute`, once per target when the project sets ``targets`` (each with its configuration).

    Every target of another architecture is checked for emulation first, before any target runs. A
    ``build`` or ``publish`` writes its targets into one staged root (:func:`_targets.staged_root`) that
    replaces the wheelhouse (or dist/) only when every target succeeded, with the index written last."""
    if not config.per_target or stages not in PER_TARGET:
        return [execute(config, log, stages, options)]
    if config.python not in {each.python for each in config.per_target}:
        log.warning(f"python = {config.python} is not used: with targets, each target names its CPython")
    if any(stage.uses_engine for stage in stages):
        for each in config.per_target:
            _bootstrap.check_emulation(each)
    roots = {
        BUILD: (config.wheelhouse, "wheelhouse", "wheelhouse"),
        PUBLISH: (config.dist_dir, "dist/ directory", "dist-dir"),
    }
    if stages not in roots:
        return [_execute_target(each, number, config, log, stages, options) for number, each in _numbered(config)]
    root, what, key = roots[stages]
    runs: list[Run] = []
    with contextlib.ExitStack() as held:
        held.enter_context(_guard.project_lock(config.wheelhouse, log))
        sweep_files(config, log)
        protected = (config.project_dir, config.cache_dir)
        held.enter_context(_file_errors("targets"))  # a full disk while staging: a FileSystemError
        stage = held.enter_context(_targets.staged_root(root, what, key, protected, log))
        staged = [_targets.staged(each, stage, key) for each in config.per_target]
        for (number, each), into in zip(_numbered(config), staged, strict=True):
            run = _execute_target(into, number, config, log, stages, options)
            run.config = each  # reported with the target's own folders, where they are after the swap
            runs.append(run)
        if stages is BUILD:
            _targets.write_index(stage, staged)
        given = options or Options()
        if stages is PUBLISH and given.push and not given.no_index:
            members = []
            for run in runs:
                published = run.need(run.published, "publish")
                manifest, _sha = _wheelhouse.read_wheelhouse(run.config.wheelhouse)
                members.append(_targets.Member(run.config, published.pushed or "", published.image_id or "", manifest))
            with log.stage("index"):
                indexes = _targets.push_indexes(members, given.push, log, runs[0].cache)
            _wheelhouse.write_atomic(stage / _targets.IMAGES, json.dumps(indexes, indent=2) + "\n")
        if stages is PUBLISH:  # the index of targets, and one SHA256SUMS over every target's files
            from . import _publish  # noqa: PLC0415 - as stage_publish

            _targets.write_dist_index(stage, config.per_target)
            _wheelhouse.write_atomic(stage / "SHA256SUMS", _publish.sha256sums(stage))
    return runs


def _numbered(config: Config) -> list[tuple[int, Config]]:
    return list(enumerate(config.per_target, 1))


def _execute_target(
    each: Config, number: int, config: Config, log: Log, stages: tuple[Stage, ...], options: Options | None
) -> Run:
    log.notice(f"target {each.target} ({number} of {len(config.per_target)})")
    return execute(each, log, stages, options)


def sweep_files(config: Config, log: Log) -> None:
    """Temporary folders that dead runs left: in the system's temp dir, the cache, beside the outputs."""
    _guard.sweep_dirs(Path(tempfile.gettempdir()), log, "wheelbarrow-*")
    _guard.sweep_dirs(config.cache_dir, log, "wheelbarrow-*")
    _guard.sweep_dirs(config.cache_dir / "wheels", log, "wheelbarrow-*")
    for target in (config.wheelhouse, config.dist_dir):
        real = Path(os.path.realpath(target))
        _guard.sweep_dirs(real.parent, log, f".{real.name}-*")


def execute(config: Config, log: Log, stages: tuple[Stage, ...] = BUILD, options: Options | None = None) -> Run:
    """Run ``stages`` in order; always remove the work directory and this run's containers.

    A stage's OSError (a full disk, a permission, a read-only file system) ends as a FileSystemError.
    """
    engine = Engine(log, name=config.engine, platform=config.platform if config.foreign else "")
    log.notice(f"run {_guard.run_id()} (pid {os.getpid()}): {', '.join(stage.name for stage in stages)}")
    with contextlib.ExitStack() as held:
        if any(stage.needs_lock for stage in stages):
            held.enter_context(_guard.project_lock(config.wheelhouse, log))
            sweep_files(config, log)
        cache = Cache(config.cache_dir, log)
        run = Run(config=config, log=log, engine=engine, cache=cache, options=options or Options())
        began = time.monotonic()
        try:
            for group in groups(stages):
                run_group(run, group)
            run.wall = time.monotonic() - began
        finally:
            _guard.remove_tempdir(run.work)
            if any(stage.uses_engine for stage in stages):
                run.engine.remove_leftovers()  # and a killed run's container that appeared since the first sweep
            if run.candidate and run.engine.image_id(run.candidate):
                run.engine.discard_image(run.candidate)  # unverified: never left behind
    return run


def groups(stages: tuple[Stage, ...]) -> list[tuple[Stage, ...]]:
    """``stages`` in the groups that run at once: a stage with ``with_next`` joins the group of the next."""
    groups: list[list[Stage]] = [[]]
    for stage in stages:
        groups[-1].append(stage)
        if not stage.with_next:
            groups.append([])
    return [tuple(group) for group in groups if group]


def run_group(run: Run, group: tuple[Stage, ...]) -> None:
    """The stages of one group, each announced and timed as its own; several run in threads.

    The error said is always the same for the same failures: that of the first stage, in the pipeline's
    order, that failed. So a stage's failure cancels the stages after it (their commands are interrupted as
    by Ctrl-C, and none is started again: :class:`~wheelbarrow._cmd.Cancel`), while the stages before it
    run to their end, since one of them may fail too. Ctrl-C (or a signal) cancels every stage."""

    def one(stage: Stage) -> None:
        with run.log.stage(stage.name), _file_errors(stage.name):
            stage.fn(run)
        run.timings[stage.name] = run.log.timings.get(stage.name, 0.0)

    if len(group) == 1:
        one(group[0])
        return
    tokens = [Cancel() for _ in group]
    failures: dict[int, BaseException] = {}
    finished = [threading.Event() for _ in group]

    def work(index: int) -> None:
        with tokens[index].applies():
            try:
                one(group[index])
            except BaseException as err:  # noqa: BLE001 - handed to the calling thread, said there
                failures[index] = err
                for later in tokens[index + 1 :]:
                    later.cancel()
            finally:
                finished[index].set()

    for index in range(len(group)):
        threading.Thread(target=work, args=(index,), name=f"wheelbarrow-{group[index].name}", daemon=True).start()
    try:
        _wait(finished, tokens)
    except BaseException:  # Ctrl-C, a signal: every stage is cancelled, and given its grace
        for token in tokens:
            token.cancel()
        _wait(finished, tokens)
        raise
    real = [failures[n] for n in sorted(failures) if not isinstance(failures[n], Cancelled)]
    if real:
        raise real[0]


def _wait(finished: list[threading.Event], tokens: list[Cancel]) -> None:
    """Until every stage has ended, a fifth of a second at a time (Ctrl-C interrupts the wait). A cancelled
    stage's commands get :data:`~wheelbarrow._parallel.GRACE_SECONDS` to end, as Ctrl-C gives them; then
    what still runs is killed, and a stage still not ended a second later is left (its thread is a daemon:
    it cannot keep the process from ending)."""
    while not all(event.wait(0.2) for event in finished if not event.is_set()):
        cancelled = [t.since for t in tokens if t.since is not None]
        late = time.monotonic() - min(cancelled) - GRACE_SECONDS if cancelled else 0.0
        if late > 0:
            for token in tokens:
                token.kill()
        if late > 1:
            return


@contextlib.contextmanager
def _file_errors(stage: str) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        msg = f"{stage}: could not read or write{where}: {err.strerror or err}"
        tips = {
            errno.ENOSPC: "Free some space on that disk (or point cache-dir / TMPDIR elsewhere) and run again.",
            errno.EROFS: "That file system is read-only: point the setting that names it at a writable place.",
            errno.EACCES: "Fix the permissions of that path, or run as the user who owns it.",
            errno.EPERM: "Fix the permissions of that path, or run as the user who owns it.",
        }
        tip = tips.get(err.errno or 0, "Check that path, and run again; nothing was replaced.")
        raise FileSystemError(msg, tip=tip) from err
