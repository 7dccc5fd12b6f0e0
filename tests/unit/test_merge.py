"""merge: the dist/ folders of a fan-out's jobs, read as artifacts from elsewhere, made into one dist/."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.unit.conftest import sample_manifest, snapshot, write_project
from wheelbarrow import _merge, _publish, _targets, _wheelhouse
from wheelbarrow._cache import Cache, sha256_of
from wheelbarrow._config import Config, load_config
from wheelbarrow._engine import Engine
from wheelbarrow._guard import MARKER, is_marked, mark
from wheelbarrow._log import Log
from wheelbarrow._manifest import Project, Target
from wheelbarrow.errors import ConfigError, WheelbarrowError

TARGETS = 'targets = ["cp311-x86_64", "cp311-aarch64"]\ndebian-suite = "bookworm"'
REF = "registry.example:5000/team/demo:1.0"
IMAGE_ID = "sha256:" + "e" * 64


def quiet() -> Log:
    return Log(sink=lambda _line: None)


def project(tmp_path: Path) -> Config:
    return load_config(write_project(tmp_path / "project", TARGETS), environ={})


def publish_part(
    config: Config,
    root: Path,
    target: str,
    *,
    pushed_as: str | None = None,
    packages: list[dict[str, str]] | None = None,
) -> Path:
    """``root`` as a job that sets targets to ``target`` publishes it: ``<target>/`` and SHA256SUMS (with
    ``packages``, as a distroless image's job does: its SBOM lists those Debian packages)."""
    each = next(c for c in config.per_target if c.target == target)
    python, _, arch = target.partition("-")
    work = root.parent / f".work-{root.name}"
    wheels = []
    for name in ("flask", f"native_{arch}"):
        path = work / f"{name}-1-py3-none-any.whl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{name}/__init__.py", name)
        wheels.append((path, _wheelhouse.entry_for(path, name, "1", "index", "any")))
    manifest = sample_manifest(
        *(e for _, e in wheels), project=Project("demo", "1.0"), target=Target(each.python, python, arch, "2.36")
    )
    wheelhouse = work / "wheelhouse"
    with _wheelhouse.staging(wheelhouse) as stage:
        _wheelhouse.fill(stage, wheels, manifest)
        _wheelhouse.swap_in(stage, wheelhouse)
    folder = root / target
    folder.mkdir(parents=True)
    _publish.wheelhouse_tarball(wheelhouse, manifest, folder / f"wheelhouse-demo-1.0-{python}-any.tar.gz")
    no_engine = cast("Engine", None)  # no wheel expects anything of the base: the SBOM asks no engine
    distroless = (f"demo:1.0-{target}", packages or [])
    sbom = _publish.sbom(manifest, wheelhouse, "0" * 64, no_engine, "python:3.11-slim", distroless)
    (folder / f"sbom-demo-1.0-{target}.cdx.json").write_text(sbom, encoding="utf-8")
    (folder / f"image-demo-1.0-{target}.tar").write_bytes(b"not really an image archive")
    record: dict[str, object] = {"tag": f"demo:1.0-{target}", "id": IMAGE_ID, "repo_digests": []}
    if pushed_as is not None:
        record["pushed"] = f"{pushed_as}-{target}@sha256:{'d' * 64}"
    (folder / f"image-demo-1.0-{target}.json").write_text(json.dumps(record), encoding="utf-8")
    (folder / "SHA256SUMS").write_text(_publish.sha256sums(folder), encoding="utf-8")
    (root / "SHA256SUMS").write_text(_publish.sha256sums(root), encoding="utf-8")
    return root


def parts(config: Config, tmp_path: Path, *, pushed_as: str | None = None) -> list[Path]:
    """Two artifacts, as download-artifact writes them (no markers: hidden files are not uploaded)."""
    return [
        publish_part(config, tmp_path / "parts" / f"dist-{t}", t, pushed_as=pushed_as)
        for t in ("cp311-x86_64", "cp311-aarch64")
    ]


def merge(config: Config, given: list[Path], push: str | None = None) -> _merge.Merged:
    return _merge.merge(config, given, quiet(), Cache(config.cache_dir, quiet()), push)


def test_the_targets_of_several_parts_become_one_dist_with_one_sbom_and_one_sha256sums(tmp_path: Path) -> None:
    config = project(tmp_path)
    given = parts(config, tmp_path)
    before = snapshot(tmp_path / "parts")
    merged = merge(config, given)
    dist = config.dist_dir
    assert merged.targets == ("cp311-x86_64", "cp311-aarch64")  # the project's order
    assert is_marked(dist, "dist/ directory")
    assert {p.name for p in dist.iterdir()} == {
        MARKER,
        "SHA256SUMS",
        "targets.json",
        "sbom-demo-1.0.cdx.json",
        *merged.targets,
    }
    for target in merged.targets:
        assert is_marked(dist / target, "dist/ directory")  # a later publish or merge may replace it
        assert (dist / target / f"sbom-demo-1.0-{target}.cdx.json").read_bytes() == (
            tmp_path / "parts" / f"dist-{target}" / target / f"sbom-demo-1.0-{target}.cdx.json"
        ).read_bytes()
    listed = {}
    for line in (dist / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    every = {p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()}
    assert set(listed) == {n for n in every if Path(n).name not in ("SHA256SUMS", MARKER)}
    assert all(sha256_of(dist / n) == d for n, d in listed.items())
    assert snapshot(tmp_path / "parts") == before  # the parts are only read
    # The same parts again: nothing to write.
    lines: list[str] = []
    _merge.merge(config, given, Log(sink=lines.append), Cache(config.cache_dir, quiet()), None)
    assert any("unchanged" in line for line in lines)


def test_the_combined_sbom_is_valid_cyclonedx_with_each_target_and_its_wheels(tmp_path: Path) -> None:
    config = project(tmp_path)
    merge(config, parts(config, tmp_path))
    text = (config.dist_dir / "sbom-demo-1.0.cdx.json").read_text(encoding="utf-8")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)
    assert document["metadata"]["component"]["purl"] == "pkg:pypi/demo@1.0"
    by_target = {c["properties"][0]["value"]: c for c in document["components"]}
    assert set(by_target) == {"cp311-x86_64", "cp311-aarch64"}
    assert {c["name"] for c in by_target["cp311-aarch64"]["components"]} == {"flask", "native_aarch64"}
    refs: list[str] = []

    def collect(components: list[dict[str, Any]]) -> None:
        for component in components:
            refs.append(component["bom-ref"])
            collect(component.get("components", []))

    collect(document["components"])
    assert len(refs) == len(set(refs))  # flask is in both targets: two entries, told apart by their target
    dependencies = {d["ref"]: d["dependsOn"] for d in document["dependencies"]}
    assert set(dependencies["demo@1.0"]) == {"demo@1.0/cp311-x86_64", "demo@1.0/cp311-aarch64"}
    assert set(refs) | {"demo@1.0"} >= set(dependencies) | {r for d in dependencies.values() for r in d}


def test_the_combined_sbom_keeps_the_debian_packages_of_each_distroless_target(tmp_path: Path) -> None:
    config = project(tmp_path)
    packages = {
        "cp311-x86_64": [{"Package": "libssl3", "Version": "3.0.17-1~deb12u2", "Architecture": "amd64"}],
        "cp311-aarch64": [
            {"Package": "libssl3", "Version": "3.0.17-1~deb12u2", "Architecture": "arm64"},
            {"Package": "libpq5", "Version": "15.14-0+deb12u1", "Architecture": "arm64"},
        ],
    }
    given = [
        publish_part(config, tmp_path / "parts" / f"dist-{t}", t, packages=packages[t])
        for t in ("cp311-x86_64", "cp311-aarch64")
    ]
    merge(config, given)
    text = (config.dist_dir / "sbom-demo-1.0.cdx.json").read_text(encoding="utf-8")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    by_target = {c["properties"][0]["value"]: c for c in json.loads(text)["components"]}
    for target, listed in packages.items():
        purls = {c.get("purl") for c in by_target[target]["components"]}
        for fields in listed:
            arch = fields["Architecture"]
            assert f"pkg:deb/debian/{fields['Package']}@{fields['Version'].replace('+', '%2B')}?arch={arch}" in purls
        assert {c["name"] for c in by_target[target]["components"]} == {"flask", f"native_{target.split('-')[1]}"} | {
            f["Package"] for f in listed
        }
        refs = [c["bom-ref"] for c in by_target[target]["components"]]
        assert all(r.startswith(f"{target}/") for r in refs)
        assert len(refs) == len(set(refs))


def _add(part: Path, name: str, data: bytes = b"x") -> None:
    (part / name).parent.mkdir(parents=True, exist_ok=True)
    (part / name).write_bytes(data)


def _relist(part: Path) -> None:
    """SHA256SUMS written again over what the part now holds (an attacker who can write the part can)."""
    (part / "SHA256SUMS").write_text(_publish.sha256sums(part), encoding="utf-8")


def _sums(part: Path, line: str) -> None:
    with (part / "SHA256SUMS").open("a", encoding="utf-8") as stream:
        stream.write(line + "\n")


def _tarball(part: Path) -> Path:
    return next(part.glob("*/wheelhouse-*.tar.gz"))


def _image_tar(part: Path) -> Path:
    return next(part.glob("*/image-*.tar"))


def _sbom(part: Path) -> Path:
    return next(part.glob("*/sbom-*"))


def unlisted_file(part: Path, _tmp: Path) -> None:
    _add(part, "cp311-aarch64/extra.sh", b"#!/bin/sh\n")


def listed_file_gone(part: Path, _tmp: Path) -> None:
    _image_tar(part).unlink()


def changed_after_listing(part: Path, _tmp: Path) -> None:
    _image_tar(part).write_bytes(b"other bytes")


def link_to_a_host_file(part: Path, _tmp: Path) -> None:
    image = _image_tar(part)
    image.unlink()
    image.symlink_to("/etc/passwd")


def fifo_where_a_file_is_listed(part: Path, _tmp: Path) -> None:
    image = _image_tar(part)
    image.unlink()
    os.mkfifo(image)


def path_out_of_the_part(part: Path, _tmp: Path) -> None:
    _sums(part, f"{'0' * 64}  cp311-aarch64/../../../etc/passwd")


def absolute_path(part: Path, _tmp: Path) -> None:
    _sums(part, f"{'0' * 64}  /etc/passwd")


def control_character(part: Path, _tmp: Path) -> None:
    _sums(part, f"{'0' * 64}  cp311-aarch64/\x1b[2Jx")


def listed_twice(part: Path, _tmp: Path) -> None:
    _sums(part, (part / "SHA256SUMS").read_text(encoding="utf-8").splitlines()[0])


def unknown_target(part: Path, _tmp: Path) -> None:
    (part / "cp311-aarch64").rename(part / "cp312-aarch64")
    _relist(part)


def another_targets_wheelhouse(part: Path, tmp: Path) -> None:
    _tarball(part).write_bytes(_tarball(tmp / "parts" / "dist-cp311-x86_64").read_bytes())
    _relist(part)


def not_a_tarball(part: Path, _tmp: Path) -> None:
    _tarball(part).write_bytes(b"\x1f\x8b not gzip")
    _relist(part)


def another_projects_sbom(part: Path, _tmp: Path) -> None:
    text = _sbom(part).read_text(encoding="utf-8")
    _sbom(part).write_text(text.replace('"name": "demo"', '"name": "other"'), encoding="utf-8")
    _relist(part)


def second_sbom(part: Path, _tmp: Path) -> None:
    _add(part, "cp311-aarch64/sbom-evil.cdx.json", b"{}")
    _relist(part)


def _retar(part: Path, change: Callable[[list[tuple[tarfile.TarInfo, bytes]]], None]) -> None:
    """The part's wheelhouse tarball rewritten with ``change`` applied to its members, and listed again."""
    tarball = _tarball(part)
    with tarfile.open(tarball, "r:gz") as archive:
        members = [(m, archive.extractfile(m).read() if m.isreg() else b"") for m in archive.getmembers()]  # type: ignore[union-attr]
    change(members)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as out:
        for info, data in members:
            out.addfile(info, io.BytesIO(data) if info.isreg() else None)
    tarball.write_bytes(gzip.compress(raw.getvalue()))
    _relist(part)


def _member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data), link
    return info, data


def second_manifest_naming_another_project(part: Path, _tmp: Path) -> None:
    evil = json.dumps({"project": {"name": "evil"}}).encode()
    _retar(part, lambda members: members.append(_member("wheelhouse/manifest.json", evil)))


def member_out_of_the_wheelhouse(part: Path, _tmp: Path) -> None:
    _retar(part, lambda members: members.append(_member("../../../tmp/PWNED", b"x")))


def symlink_member(part: Path, _tmp: Path) -> None:
    _retar(part, lambda members: members.append(_member("wheelhouse/link", kind=tarfile.SYMTYPE, link="/etc/shadow")))


def long_name_bomb(part: Path, _tmp: Path) -> None:
    """A GNU long name of 64 MiB (it compresses to a few kB): tarfile would read it whole into memory."""
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, 64 << 20
    raw = header.tobuf(tarfile.GNU_FORMAT) + b"a" * (64 << 20) + bytes(1024)
    _tarball(part).write_bytes(gzip.compress(raw, compresslevel=1))
    _relist(part)


def tarball_cut_short(part: Path, _tmp: Path) -> None:
    _tarball(part).write_bytes(_tarball(part).read_bytes()[:3])
    _relist(part)


def wheel_that_is_not_the_manifest_s(part: Path, _tmp: Path) -> None:
    def swap(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        for index, (info, _data) in enumerate(members):
            if info.name.endswith(".whl"):
                info.size = 5
                members[index] = (info, b"other")

    _retar(part, swap)


def unlisted_member(part: Path, _tmp: Path) -> None:
    _retar(part, lambda members: members.append(_member("wheelhouse/extra.whl", b"x")))


def _sbom_edit(part: Path, change: Callable[[dict[str, Any]], object]) -> None:
    document = json.loads(_sbom(part).read_text(encoding="utf-8"))
    change(document)
    _sbom(part).write_text(json.dumps(document), encoding="utf-8")
    _relist(part)


def sbom_metadata_a_list(part: Path, _tmp: Path) -> None:
    _sbom_edit(part, lambda d: d.update(metadata=[]))


def sbom_depends_on_a_number(part: Path, _tmp: Path) -> None:
    _sbom_edit(part, lambda d: d["dependencies"].append({"ref": "x", "dependsOn": 5}))


def sbom_with_nan(part: Path, _tmp: Path) -> None:
    text = _sbom(part).read_text(encoding="utf-8").replace('"version": 1', '"version": NaN', 1)
    _sbom(part).write_text(text, encoding="utf-8")
    _relist(part)


def another_targets_sbom(part: Path, tmp: Path) -> None:
    other = next((tmp / "parts" / "dist-cp311-x86_64").glob("*/sbom-*"))
    _sbom(part).write_text(other.read_text(encoding="utf-8"), encoding="utf-8")
    _relist(part)


def nested_too_deep(part: Path, _tmp: Path) -> None:
    deep = part / "cp311-aarch64" / Path(*["d"] * 40)
    deep.mkdir(parents=True)
    (deep / "f").write_bytes(b"x")
    _relist(part)


def hard_link_to_a_host_file(part: Path, tmp: Path) -> None:
    host = tmp / "host-secret"
    host.write_text("secret")
    os.link(host, part / "cp311-aarch64" / "secret")
    _relist(part)


def folder_that_is_not_a_target(part: Path, _tmp: Path) -> None:
    (part / "junk" / "deeper").mkdir(parents=True)


ATTACKS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "a file the sums do not list": (unlisted_file, "not list"),
    "a listed file gone": (listed_file_gone, "which its SHA256SUMS lists"),
    "a file changed after it was listed": (changed_after_listing, "does not match the sha256"),
    "a listed file that is a link to a host file": (link_to_a_host_file, "is a link"),
    "a fifo where a file is listed": (fifo_where_a_file_is_listed, "not a regular file"),
    "a path out of the part": (path_out_of_the_part, "plain relative path"),
    "an absolute path": (absolute_path, "plain relative path"),
    "a control character in a name": (control_character, "plain relative path"),
    "a name listed twice": (listed_twice, "listed once"),
    "a target the project does not name": (unknown_target, "do not name"),
    "another target's wheelhouse under this target's name": (another_targets_wheelhouse, "not demo for the target"),
    "a tarball that is not one": (not_a_tarball, "cannot be read"),
    "the SBOM of another project": (another_projects_sbom, "is not the CycloneDX SBOM of demo"),
    "a second SBOM": (second_sbom, "several SBOM"),
    "a second manifest.json in the tarball (tar keeps the last)": (
        second_manifest_naming_another_project,
        "which publish never writes",
    ),
    "a tarball member out of the wheelhouse": (member_out_of_the_wheelhouse, "which publish never writes"),
    "a symlink in the tarball": (symlink_member, "which publish never writes"),
    "a 64 MiB long name that compresses to kB": (long_name_bomb, "publish never writes"),
    "a tarball cut to 3 bytes": (tarball_cut_short, "cannot be read"),
    "a wheel in the tarball that is not the manifest's": (wheel_that_is_not_the_manifest_s, "does not hold what"),
    "a tarball member the manifest does not list": (unlisted_member, "does not hold what"),
    "SBOM metadata that is a list": (sbom_metadata_a_list, "is not the CycloneDX SBOM"),
    "an SBOM dependency on a number": (sbom_depends_on_a_number, "is not the CycloneDX SBOM"),
    "NaN in the SBOM": (sbom_with_nan, "is not plain JSON"),
    "another target's SBOM": (another_targets_sbom, "does not list the target's wheels"),
    "folders nested 40 deep": (nested_too_deep, "nested deeper"),
    "a hard link to a host file": (hard_link_to_a_host_file, "hard link"),
    "a folder at the top that is not a target": (folder_that_is_not_a_target, "is not what publish writes"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_part_that_is_not_as_published_is_refused_before_dist_is_touched(tmp_path: Path, attack: str) -> None:
    config = project(tmp_path)
    given = parts(config, tmp_path)
    mutate, message = ATTACKS[attack]
    mutate(given[1], tmp_path)
    config.dist_dir.mkdir()
    mark(config.dist_dir, "dist/ directory")
    (config.dist_dir / "SHA256SUMS").write_text("the previous one\n", encoding="utf-8")
    before = snapshot(config.dist_dir)
    with pytest.raises(WheelbarrowError, match=message):
        merge(config, given)
    assert snapshot(config.dist_dir) == before  # the previous dist/ as it was
    assert [p.name for p in config.dist_dir.parent.iterdir() if p.name.startswith(".dist")] == []  # no staging


def test_every_target_once_and_only_the_projects(tmp_path: Path) -> None:
    config = project(tmp_path)
    x86, arm = parts(config, tmp_path)
    with pytest.raises(ConfigError, match="no part holds the target cp311-aarch64"):
        merge(config, [x86])
    with pytest.raises(ConfigError, match="cp311-x86_64 is in both"):
        merge(config, [x86, arm, x86])
    with pytest.raises(ConfigError, match="at least one part"):
        merge(config, [])
    single = load_config(write_project(tmp_path / "single", 'debian-suite = "bookworm"'), environ={})
    with pytest.raises(ConfigError, match="sets no targets"):
        merge(single, [x86, arm])
    for odd in (tmp_path / "absent", x86 / "SHA256SUMS"):
        with pytest.raises(ConfigError, match=r"does not exist|not a folder"):
            merge(config, [odd, arm])
    link = tmp_path / "link-to-part"
    link.symlink_to(x86)
    with pytest.raises(ConfigError, match="is a link"):
        merge(config, [link, arm])


def test_a_part_inside_the_output_or_the_project_itself_as_output_is_refused(tmp_path: Path) -> None:
    config = project(tmp_path)
    inside = load_config(config.project_dir, environ={"WHEELBARROW_DIST_DIR": str(tmp_path / "parts")})
    given = parts(inside, tmp_path)
    with pytest.raises(ConfigError, match="holds it"):
        merge(inside, given)  # dist-dir would replace the folder the parts are in
    with pytest.raises(ConfigError, match="holds it"):  # refused as the configuration is read
        merge(load_config(config.project_dir, environ={"WHEELBARROW_DIST_DIR": str(config.project_dir)}), given)
    assert (config.project_dir / "pyproject.toml").is_file()
    assert all((p / "SHA256SUMS").is_file() for p in given)


def test_with_push_each_target_must_have_been_pushed_as_ref_dash_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(tmp_path)
    made: list[tuple[list[_targets.Member], str]] = []

    def fake_indexes(members: list[_targets.Member], push: str, _log: Log, _cache: Cache) -> list[dict[str, object]]:
        made.append((members, push))
        return [{"index": f"{push}-cp311@sha256:{'f' * 64}", "platforms": {}}]

    monkeypatch.setattr(_targets, "push_indexes", fake_indexes)
    elsewhere = parts(config, tmp_path, pushed_as="registry.example:5000/other/demo:1.0")
    with pytest.raises(WheelbarrowError, match=f"was not pushed as {REF}-cp311-x86_64"):
        merge(config, elsewhere, REF)
    unpushed = parts(config, tmp_path / "b")
    with pytest.raises(WheelbarrowError, match="was not pushed"):
        merge(config, unpushed, REF)
    assert made == []  # nothing reached the registry
    merged = merge(config, parts(config, tmp_path / "c", pushed_as=REF), REF)
    ((members, push),) = made
    assert push == REF
    assert [(m.config.target, m.pushed.split("@")[0], m.image_id) for m in members] == [
        ("cp311-x86_64", f"{REF}-cp311-x86_64", IMAGE_ID),
        ("cp311-aarch64", f"{REF}-cp311-aarch64", IMAGE_ID),
    ]
    assert [m.manifest.target.machine for m in members] == ["x86_64", "aarch64"]
    assert json.loads((config.dist_dir / _targets.IMAGES).read_text(encoding="utf-8")) == list(merged.indexes)
    assert "images.json" in (config.dist_dir / "SHA256SUMS").read_text(encoding="utf-8")


def test_a_stray_in_a_merged_dist_stops_the_next_merge_and_is_kept(tmp_path: Path) -> None:
    config = project(tmp_path)
    given = parts(config, tmp_path)
    merge(config, given)
    (config.dist_dir / "NOTES.txt").write_text("my notes", encoding="utf-8")
    (config.dist_dir / "keep").mkdir()
    (config.dist_dir / "keep" / "file").write_text("precious", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"did not write there: NOTES\.txt, keep"):
        merge(config, given)
    assert (config.dist_dir / "NOTES.txt").read_text(encoding="utf-8") == "my notes"
    assert (config.dist_dir / "keep" / "file").read_text(encoding="utf-8") == "precious"


def test_dist_dir_inside_a_part_is_refused_even_unmarked(tmp_path: Path) -> None:
    config = project(tmp_path)
    given = parts(config, tmp_path)
    inside = load_config(config.project_dir, environ={"WHEELBARROW_DIST_DIR": str(given[0] / "out")})
    with pytest.raises(ConfigError, match="inside the part"):
        merge(inside, given)
    assert not (given[0] / "out").exists()
