"""The pipeline, declared as data.

:data:`BUILD` lists the stages of ``wheelbarrow build`` in order; ``wheelbarrow
plan`` runs its first part, :data:`IMAGE` and :data:`VERIFY` the image side.
The CLI and the nox helpers both call :func:`execute`, so they run the same
pipeline. Each stage is a function of the :class:`Run` that reads what earlier
stages left on it and adds its own.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from . import _bootstrap, _build, _fetch, _guard, _image, _lock, _plan, _repair, _schedule, _verify, _wheelhouse
from ._cache import Cache, key_of, sha256_of
from ._config import Config
from ._engine import Engine
from ._fetch import Fetched
from ._guard import tempdir
from ._log import Log
from ._repair import platform_tag
from .errors import VerifyError


@dataclass
class Run:
    """What the stages of one run share."""

    config: Config
    log: Log
    engine: Engine
    cache: Cache
    machine: str = field(default_factory=_bootstrap.machine)
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
    exclude: tuple[str, ...] = ()
    epoch: int = 0
    built: list[_schedule.Built] = field(default_factory=list)
    manifest: _wheelhouse.Manifest | None = None
    summary: list[dict[str, object]] = field(default_factory=list)
    image: _image.Image | None = None

    def need_plan(self) -> _plan.BuildPlan:
        assert self.plan is not None, "the plan stage runs before this one"
        return self.plan


def stage_engine(run: Run) -> None:
    version = run.engine.check()
    run.log.info(f"{run.engine.name} engine {version}")
    run.engine.sweep()
    run.engine.sweep_images(_image.CANDIDATES)


def stage_lock(run: Run) -> None:
    run.lock = _lock.read_lock(run.config, run.log, machine=run.machine, cache=run.cache)
    run.log.info(f"{len(run.lock.packages)} locked runtime packages from {run.lock.source.name} ({run.lock.kind})")


def stage_plan(run: Run) -> None:
    assert run.lock is not None
    run.plan = _plan.make_plan(run.config, run.lock, machine=run.machine)
    run.log.info(run.plan.describe())


def stage_fetch(run: Run) -> None:
    plan = run.need_plan()
    run.index_wheels, run.sdists = _fetch.fetch_locked(plan, run.cache, run.log)
    requirement_sets = [_fetch.build_requires_of_sdist(s.path) for s in run.sdists]
    requirement_sets.append(_fetch.build_requires_of_project(plan.project.source))
    dest = run.work / "buildreqs"
    run.build_requirements = _fetch.fetch_build_requirements(plan, requirement_sets, dest, run.cache, run.log)
    run.log.info(f"build requirements: {', '.join(p.name for p in run.build_requirements)}")


def stage_bases(run: Run) -> None:
    """Both base images, and what the runtime base provides that the repair must not graft."""
    run.builder_base = _bootstrap.resolve_builder_base(run.config, run.engine, run.log)
    run.runtime_base = _bootstrap.resolve_runtime_base(run.config, run.engine, run.log)
    run.runtime_base_id = run.engine.image_id(run.runtime_base) or ""

    def ask_ldconfig() -> list[str]:
        ldconfig = run.engine.run_image(run.runtime_base, ["ldconfig", "-p"])
        return sorted(_repair.parse_ldconfig(ldconfig.output)) if ldconfig.returncode == 0 else []

    provided = run.cache.remember(key_of({"ldconfig": run.runtime_base_id}), list, ask_ldconfig)
    run.exclude = _repair.base_exclusions(run.config.repair_policy, frozenset(provided))
    run.log.info(f"builder base {run.builder_base}; runtime base {run.runtime_base}")
    left = ", ".join(run.exclude) or "nothing"
    run.log.info(f"repair policy {run.config.repair_policy}: leaving {left} to the runtime base")


def stage_builder(run: Run) -> None:
    plan = run.need_plan()
    project_requires = _fetch.build_requires_of_project(plan.project.source) if plan.project.engine == "pure" else ()
    run.builder = _build.prepare_builder(
        plan, run.builder_base, run.build_requirements, project_requires, run.engine, run.log
    )
    run.log.info(f"builder image {run.builder.tag} ({run.builder.image_id[:19]})")


def stage_build(run: Run) -> None:
    plan, builder = run.need_plan(), run.builder
    assert builder is not None
    run.epoch = _build.source_date_epoch(plan.project.source, run.log)
    ctx = _build.BuildContext(plan, builder, run.engine, run.work, run.log, run.epoch, run.exclude)
    run.built = _schedule.build_all(run.sdists, ctx, run.cache, run.config.jobs)
    fresh = sum(not b.from_cache for b in run.built)
    run.log.info(f"{fresh} built, {len(run.built) - fresh} from the cache")


def stage_wheelhouse(run: Run) -> None:
    plan, builder, lock = run.need_plan(), run.builder, run.lock
    assert builder is not None
    assert lock is not None
    entries: list[tuple[Path, _wheelhouse.WheelEntry, str]] = []
    for wheel in run.index_wheels:
        entry = _wheelhouse.entry_for(wheel.path, wheel.name, wheel.version, "index", platform_tag(wheel.filename))
        entries.append((wheel.path, entry, "index"))
    for built in run.built:
        sdist, repaired = built.sdist, built.wheel
        entry = _wheelhouse.entry_for(
            repaired.path,
            sdist.name if sdist else canonicalize_name(plan.project.name),
            sdist.version if sdist else plan.project.version,
            "built",
            repaired.platform_tag,
            sdist={"file": sdist.filename, "sha256": sdist.sha256} if sdist else None,
            builder_image_id=builder.image_id,
            grafted_libraries=repaired.grafted,
            expected_from_base=repaired.expected_from_base,
        )
        entries.append((repaired.path, entry, "cache" if built.from_cache else "built"))
    entries.sort(key=lambda item: item[1].name)
    run.manifest = _wheelhouse.Manifest(
        project={"name": plan.project.name, "version": plan.project.version},
        target={
            "python": plan.python,
            "python_tag": plan.python_tag,
            "machine": plan.machine,
            "glibc": f"{plan.glibc[0]}.{plan.glibc[1]}",
        },
        lock={"file": lock.source.name, "kind": lock.kind, "sha256": sha256_of(lock.source)},
        runtime_base={
            "image": run.runtime_base,
            "image_id": run.runtime_base_id,
            "repair_policy": run.config.repair_policy,
            "provides": list(run.exclude),
        },
        builder={
            "image": builder.tag,
            "image_id": builder.image_id,
            "base": run.builder_base,
            "system_packages": list(plan.system_packages),
        },
        source_date_epoch=run.epoch,
        build_requirements=tuple({"file": p.name, "sha256": sha256_of(p)} for p in run.build_requirements),
        wheels=tuple(e for _, e, _ in entries),
    )
    changed = _wheelhouse.publish(plan.wheelhouse, [(p, e) for p, e, _ in entries], run.manifest)
    run.log.info(f"wheelhouse {plan.wheelhouse}: {len(entries)} wheels{'' if changed else ' (unchanged)'}")
    run.summary = [
        {
            "wheel": e.file,
            "origin": origin,
            "platform": e.platform_tag,
            "size": e.size,
            "grafted": list(e.grafted_libraries),
            "from_base": list(e.expected_from_base),
        }
        for _, e, origin in entries
    ]


def stage_image(run: Run) -> None:
    run.image = _image.build_image(run.config, run.engine, run.log, run.cache)


def stage_verify(run: Run) -> None:
    if run.image is not None:
        tag, manifest = run.image.candidate, run.image.manifest
    else:
        tag, (manifest, _) = run.config.image_tag, _image.read_wheelhouse(run.config.wheelhouse)
    if run.engine.image_id(tag) is None:
        msg = f"there is no image {tag} to verify"
        raise VerifyError(msg, tip="Build it first: nox -s image (or wheelbarrow image).")
    base = run.image.base if run.image else _bootstrap.resolve_runtime_base(run.config, run.engine, run.log)
    checks = _verify.verify_image(run.engine, tag, base, manifest, run.log, run.cache)
    shown = run.image.tag if run.image else tag
    run.log.info(f"image {shown}: all {len(checks)} checks passed (network off)")


def stage_tag(run: Run) -> None:
    assert run.image is not None
    _image.promote(run.image, run.engine, run.log)


Stage = tuple[str, Callable[[Run], None]]
PLAN: tuple[Stage, ...] = (("lock", stage_lock), ("plan", stage_plan))
BUILD: tuple[Stage, ...] = (
    ("engine", stage_engine),
    *PLAN,
    ("fetch", stage_fetch),
    ("bases", stage_bases),
    ("builder", stage_builder),
    ("build + repair", stage_build),
    ("wheelhouse", stage_wheelhouse),
)
IMAGE: tuple[Stage, ...] = (
    ("engine", stage_engine),
    ("image", stage_image),
    ("verify", stage_verify),
    ("tag", stage_tag),
)
VERIFY: tuple[Stage, ...] = (("engine", stage_engine), ("verify", stage_verify))
USES_CONTAINERS = frozenset({"bases", "builder", "build + repair", "image", "verify"})


def sweep_files(config: Config, log: Log) -> None:
    """Temporary folders that killed runs left: in the system's temp dir, the cache, beside the outputs."""
    _guard.sweep_dirs(Path(tempfile.gettempdir()), log, "wheelbarrow-*")
    _guard.sweep_dirs(config.cache_dir, log, "wheelbarrow-*")
    _guard.sweep_dirs(config.cache_dir / "wheels", log, "wheelbarrow-*")
    for target in (config.wheelhouse, config.dist_dir):
        _guard.sweep_dirs(target.parent, log, f".{target.name}-*")


def execute(config: Config, log: Log, stages: tuple[Stage, ...] = BUILD) -> Run:
    """Run ``stages`` in order, one run per project at a time; always remove the work directory and
    this run's containers."""
    engine = Engine(log, name=config.engine)
    with contextlib.ExitStack() as held:
        if stages != PLAN:
            held.enter_context(_guard.project_lock(config.wheelhouse, log))
            sweep_files(config, log)
        run = Run(config=config, log=log, engine=engine, cache=Cache(config.cache_dir, log))
        try:
            for name, stage in stages:
                with log.stage(name):
                    stage(run)
        finally:
            shutil.rmtree(run.work, ignore_errors=True)
            if any(name in USES_CONTAINERS for name, _ in stages):
                run.engine.remove_leftovers()
            if run.image is not None and run.engine.image_id(run.image.candidate):
                run.engine.discard_image(run.image.candidate)  # unverified: never left behind
    return run
