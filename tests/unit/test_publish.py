"""Publish helpers that need no engine: the restamped image archive, SHA256SUMS, a failed write."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.unit.conftest import sample_manifest
from wheelbarrow import _guard, _publish, _wheelhouse
from wheelbarrow._manifest import WheelEntry
from wheelbarrow._publish import normalise_archive, sha256sums, wheelhouse_tarball
from wheelbarrow.errors import WheelhouseError

EPOCH = 315532800


def _archive(path: Path, mtime: float, *, owner: int, pax_time: bool) -> None:
    """A tar shaped like ``docker save`` output: directories, a blob, an index stamped with ``mtime``."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as out:
        for name, data in (
            ("blobs/", None),
            ("blobs/sha256/", None),
            ("blobs/sha256/ab", b"layer"),
            ("index.json", b"{}"),
        ):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime, info.uid, info.gid, info.uname = mtime, owner, owner, f"user{owner}"
            if pax_time:
                info.pax_headers = {"mtime": f"{mtime:.6f}", "atime": f"{mtime:.6f}"}
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                out.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                out.addfile(info, io.BytesIO(data))


def test_archives_saved_at_different_times_normalise_to_the_same_bytes(tmp_path: Path) -> None:
    _archive(tmp_path / "a.tar", 1_700_000_000, owner=0, pax_time=False)
    _archive(tmp_path / "b.tar", 1_800_000_123.25, owner=1000, pax_time=True)
    assert (tmp_path / "a.tar").read_bytes() != (tmp_path / "b.tar").read_bytes()
    normalise_archive(tmp_path / "a.tar", tmp_path / "a.out", EPOCH)
    normalise_archive(tmp_path / "b.tar", tmp_path / "b.out", EPOCH)
    assert (tmp_path / "a.out").read_bytes() == (tmp_path / "b.out").read_bytes()


def test_normalising_keeps_names_order_kinds_and_contents(tmp_path: Path) -> None:
    _archive(tmp_path / "a.tar", 1_800_000_123.25, owner=1000, pax_time=True)
    normalise_archive(tmp_path / "a.tar", tmp_path / "a.out", EPOCH)
    with tarfile.open(tmp_path / "a.tar") as before, tarfile.open(tmp_path / "a.out") as after:
        old, new = before.getmembers(), after.getmembers()
        assert [(m.name, m.type, m.mode, m.size) for m in old] == [(m.name, m.type, m.mode, m.size) for m in new]
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in new} == {(EPOCH, 0, 0, "root")}
        assert all("atime" not in m.pax_headers for m in new)
        for member in new:
            if member.isfile():
                source, copy = before.extractfile(member.name), after.extractfile(member)
                assert source is not None
                assert copy is not None
                assert copy.read() == source.read()


def test_sha256sums_lists_every_file_but_itself_sorted(tmp_path: Path) -> None:
    (tmp_path / "simple" / "demo").mkdir(parents=True)
    (tmp_path / "simple" / "demo" / "index.html").write_text("x")
    (tmp_path / "b.tar").write_bytes(b"b")
    (tmp_path / "SHA256SUMS").write_text("old")
    lines = sha256sums(tmp_path).splitlines()
    assert lines == [
        f"{hashlib.sha256(b'b').hexdigest()}  b.tar",
        f"{hashlib.sha256(b'x').hexdigest()}  simple/demo/index.html",
    ]


def test_a_write_error_in_dist_is_a_clear_error_and_keeps_the_old_dist(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "SHA256SUMS").write_text("old")
    _guard.mark(dist, "dist/ directory")

    def disk_full_while_writing() -> None:
        with _wheelhouse.replacing(dist, "dist/ directory", key="dist-dir") as stage:
            (stage / "image.tar").write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WheelhouseError, match="could not write the new dist/ directory beside") as caught:
        disk_full_while_writing()
    assert "No space left on device" in str(caught.value)
    assert "the previous dist/ directory is untouched" in caught.value.tip
    assert [p.name for p in tmp_path.iterdir()] == ["dist"]  # no staging folder left
    assert sorted(p.name for p in dist.iterdir()) == [_guard.MARKER, "SHA256SUMS"]
    assert (dist / "SHA256SUMS").read_text() == "old"


def test_a_wheel_name_over_100_characters_survives_the_tarball_byte_for_byte(tmp_path: Path) -> None:
    """charset_normalizer's manylinux wheels have names of 101+ characters: USTAR refuses them, PAX keeps
    them, and the archive stays deterministic."""
    name = "charset_normalizer-3.4.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
    assert len(name) > 100
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / name).write_bytes(b"wheel bytes")
    (wheelhouse / "manifest.json").write_text("{}")
    (wheelhouse / "requirements.txt").write_text("")
    entry = WheelEntry(
        "charset-normalizer", "3.4.4", name, hashlib.sha256(b"wheel bytes").hexdigest(), 11, "index", "x"
    )
    manifest = sample_manifest(entry)
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    wheelhouse_tarball(wheelhouse, manifest, first)
    os.utime(wheelhouse / name, (1, 1))  # the files' own times do not matter
    wheelhouse_tarball(wheelhouse, manifest, second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as archive:
        assert f"wheelhouse/{name}" in archive.getnames()
        member = archive.extractfile(f"wheelhouse/{name}")
        assert member is not None
        assert member.read() == b"wheel bytes"


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("pkg/sboms/auditwheel.cdx.json", b'{"components": [{"purl": "pkg:deb/debian/libfoo@1"}]}'),  # not dist-info
        ("pkg-1.0.dist-info/sboms/auditwheel.cdx.json", b'{"components": [{"purl": "pkg:deb/debian/libfoo@1"}]}'),
        ("pkg-1.0.dist-info/sboms/auditwheel.cdx.json", b"not json"),
        ("pkg-1.0.dist-info/sboms/auditwheel.cdx.json", b"[" * 100_000 + b"]" * 100_000),
        ("pkg-1.0.dist-info/sboms/auditwheel.cdx.json", b'{"components": [{"name": 1, "purl": "pkg:x"}, "x"]}'),
        ("pkg-1.0.dist-info/sboms/auditwheel.cdx.json", b'{"components": [{"name": "a", "purl": "pkg:::"}]}'),
        ("pkg-1.0.dist-info/sboms/auditwheel.cdx.json", b'{"components": {"name": "a"}}'),
    ],
)
def test_a_wheels_own_sbom_is_read_only_where_auditwheel_writes_it_and_only_as_it_writes_it(
    tmp_path: Path, path: str, content: bytes
) -> None:
    """A package built from a hostile sdist may ship any file: a malformed record adds no component and
    never stops publish."""
    wheel = tmp_path / "pkg-1.0-cp311-cp311-manylinux_2_34_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(path, content)
    assert _publish._grafted_components(wheel) == []  # noqa: SLF001
