from __future__ import annotations

import dataclasses
import io
import tarfile
from pathlib import Path

from tests.unit.conftest import demo_plan, quiet
from wheelbarrow._build import BuildContext, Builder
from wheelbarrow._cache import Cache, tree_digest
from wheelbarrow._engine import Engine
from wheelbarrow._fetch import Fetched
from wheelbarrow._schedule import project_key, sdist_key


def sdist(tmp_path: Path, mtime: int = 1700000000) -> Fetched:
    path = tmp_path / "psycopg2-2.9.13.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("psycopg2-2.9.13/setup.py")
        info.mtime = mtime
        archive.addfile(info, io.BytesIO(b""))
    return Fetched("psycopg2", "2.9.13", path, "1" * 64)


def context(tmp_path: Path, run_id: str = "run1") -> BuildContext:
    plan = demo_plan(tmp_path / "project")
    engine = Engine(quiet(), run_id=run_id)
    return BuildContext(
        plan, Builder("localhost/wheelbarrow/builder:demo-1", "sha256:aaa"), engine, tmp_path, quiet(), 315532800
    )


def test_sdist_key_covers_what_changes_the_bytes(tmp_path: Path) -> None:
    ctx, fetched = context(tmp_path), sdist(tmp_path)
    key = sdist_key(fetched, ctx)
    assert sdist_key(fetched, context(tmp_path, run_id="run2")) == key  # the run's id is not an input
    assert sdist_key(fetched, dataclasses.replace(ctx, epoch=1)) == key  # the project's commit time is not either
    assert sdist_key(dataclasses.replace(fetched, sha256="2" * 64), ctx) != key
    assert sdist_key(fetched, dataclasses.replace(ctx, builder=Builder("b", "sha256:bbb"))) != key
    assert sdist_key(fetched, dataclasses.replace(ctx, exclude=("libssl.so.3",))) != key


def test_project_key_follows_the_source_tree(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    key = project_key(ctx)
    (ctx.plan.project.source / "wheelhouse").mkdir()
    (ctx.plan.project.source / "wheelhouse" / "x.whl").write_bytes(b"ignored")
    assert project_key(ctx) == key
    (ctx.plan.project.source / "app.py").write_text("print('edit')\n", encoding="utf-8")
    assert project_key(ctx) != key
    assert project_key(dataclasses.replace(ctx, epoch=1)) != project_key(ctx)


def test_tree_digest_sees_content_and_modes(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x", encoding="utf-8")
    first = tree_digest(tmp_path, ())
    (tmp_path / "a.py").chmod(0o755)
    assert tree_digest(tmp_path, ()) != first


def test_wheel_cache_round_trip_and_corruption(tmp_path: Path) -> None:
    lines: list[str] = []
    cache = Cache(tmp_path / "cache", quiet())
    cache.log.sink = lines.append
    wheel = tmp_path / "a-1-cp311-cp311-manylinux_2_34_x86_64.whl"
    wheel.write_bytes(b"wheel bytes")
    stored = cache.store_wheel(
        "a" * 64, wheel, {"platform_tag": "manylinux_2_34_x86_64", "grafted": ["libpq.so.5"], "expected_from_base": []}
    )
    assert cache.wheel("a" * 64) == stored
    stored.path.write_bytes(b"tampered")
    assert cache.wheel("a" * 64) is None
    assert any("discarding it and building again" in line for line in lines)
    assert cache.info()["wheels"]["entries"] == 0
