"""merge: one dist/ from the dist/ folders of CI jobs that each published some of the targets.

A CI matrix runs one job per target (``WHEELBARROW_TARGETS=cp311-aarch64``, and so on). Each job's
``publish`` writes a dist/ root holding its target's folder and a ``SHA256SUMS``, and with
``--push REF`` pushes its image as ``REF-<target>``. A last job downloads those folders (the *parts*)
and runs ``wheelbarrow merge PART...``:

* Each part is read as what it is, an artifact from elsewhere: at its top only target folders,
  ``SHA256SUMS`` and ``images.json``; inside, only folders and regular files (a link, a device or a
  fifo is refused, never followed or opened); every file listed in the part's ``SHA256SUMS``, and
  copied, then hashed where it was copied to, so what is checked is what is kept.
* Every target the project configures is there exactly once, and no other. Each target's wheelhouse
  tarball holds a manifest that names that target's CPython and architecture, and the project's name;
  all targets have one version.
* dist-dir is written as one output (:func:`wheelbarrow._targets.staged_root`): each target's folder as
  its job published it, one CycloneDX SBOM over every target (each target a component holding its
  wheels, their bom-refs prefixed with the target), and ``SHA256SUMS`` over everything.
* With ``--push REF``: every target's image must have been pushed as ``REF-<target>`` (its record says
  so, with a digest). One index per CPython is pushed over them
  (:func:`wheelbarrow._targets.push_indexes`), each platform pulled back by digest, checked to be the
  image its job verified (the record's image id), and verified again; ``images.json`` records them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from . import _publish, _targets
from ._cache import Cache, sha256_of
from ._config import Config
from ._guard import MARKER, mark
from ._image import target_tag
from ._log import Log, printable
from ._manifest import Manifest
from ._options import parse_target
from ._shapes import read_file
from ._wheelhouse import requirements_text, write_atomic
from .errors import ConfigError, WheelbarrowError, WheelhouseError

SUMS = "SHA256SUMS"
#: The largest manifest.json or SBOM read from a part (wheelbarrow's own are a few hundred kB at most).
DOCUMENT_BYTES = 64 << 20
#: How deep a part's folders may go (publish writes ``<target>/simple/<project>/<wheel>``).
DEPTH = 4
#: The largest pax extended header read from a wheelhouse tarball (a long wheel name needs a few hundred bytes).
PAX_BYTES = 64 << 10
_SUM_LINE = re.compile(r"^([0-9a-f]{64})  ([^\x00-\x1f\x7f]+)$")
_FILE_NAME = re.compile(r"^(?!\.)[\w.+-]{1,255}$")
_PUSHED = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_PART_TIP = (
    "Give merge the dist/ folders the jobs published, as they were downloaded: each job sets targets to its "
    "own target (WHEELBARROW_TARGETS=cp311-x86_64) and runs publish."
)


@dataclass(frozen=True)
class Source:
    """One target's folder in a part, and the sha256 the part's SHA256SUMS gives each of its files."""

    target: str
    part: Path
    folder: Path
    sums: dict[str, str]  # path relative to the target's folder -> sha256


@dataclass(frozen=True)
class Merged:
    dist: Path
    targets: tuple[str, ...]
    files: tuple[str, ...]
    indexes: tuple[dict[str, object], ...]


def merge(config: Config, parts: Sequence[Path], log: Log, cache: Cache, push: str | None) -> Merged:
    """Check ``parts``, write dist-dir from them (and with ``push``, the indexes); see the module."""
    if not config.per_target:
        msg = "merge puts the targets of one project together, and this project sets no targets"
        tip = 'Set targets in [tool.wheelbarrow] (targets = ["cp311-x86_64", "cp311-aarch64"]) or WHEELBARROW_TARGETS.'
        raise ConfigError(msg, tip=tip)
    if not parts:
        raise ConfigError("merge needs at least one part (a dist/ folder a job published)", tip=_PART_TIP)
    dist = Path(os.path.realpath(config.dist_dir))
    for part in parts:
        if dist.is_relative_to(os.path.realpath(part)):
            msg = f"dist-dir is {config.dist_dir}, inside the part {part}: merge writes apart from what it reads"
            raise ConfigError(msg, tip="Point dist-dir (--dist-dir) at a folder outside the parts.")
    sources = _sources(config, parts, log)
    protected = (config.project_dir, config.cache_dir, *parts)
    by_target = {each.target: each for each in config.per_target}
    with _targets.staged_root(config.dist_dir, "dist/ directory", "dist-dir", protected, log) as stage:
        members: list[_targets.Member] = []
        documents: list[tuple[str, dict[str, Any]]] = []
        version = ""
        for source in sources:
            folder = stage / source.target
            _copy(source, folder)
            manifest = _manifest_of(folder, source, config)
            if version and manifest.project.version != version:
                msg = f"{source.part}: target {source.target} is version {manifest.project.version}, not {version}"
                raise WheelhouseError(msg, tip="Merge the parts of one run: every job builds the same commit.")
            version = manifest.project.version
            documents.append((source.target, _sbom_of(folder, source, config, manifest)))
            if push:
                pushed, image_id = _record_of(folder, source, push)
                members.append(_targets.Member(by_target[source.target], pushed, image_id, manifest))
            (folder / SUMS).write_text(_publish.sha256sums(folder), encoding="utf-8")
        name = f"sbom-{canonicalize_name(config.project_name)}-{version}.cdx.json"
        write_atomic(stage / name, combined_sbom(config.project_name, version, documents))
        _targets.write_dist_index(stage, config.per_target)
        indexes: list[dict[str, object]] = []
        if push:
            with log.stage("index"):
                indexes = _targets.push_indexes(members, push, log, cache)
            write_atomic(stage / _targets.IMAGES, json.dumps(indexes, indent=2) + "\n")
        write_atomic(stage / SUMS, _publish.sha256sums(stage))
        files = tuple(
            sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file() and p.name != MARKER)
        )
    for name in files:
        if "/" not in name:
            log.info(f"  {config.dist_dir / name}")
    log.notice(f"merged {', '.join(s.target for s in sources)} into {config.dist_dir}")
    return Merged(config.dist_dir, tuple(s.target for s in sources), files, tuple(indexes))


# --- reading the parts -------------------------------------------------------------------------------


def _sources(config: Config, parts: Sequence[Path], log: Log) -> list[Source]:
    """Every target's folder, once, in the order of ``targets``; a part that is not what publish writes,
    a target twice, a missing or an unknown one is a ConfigError naming it."""
    found: dict[str, Source] = {}
    for part in parts:
        _check_part(part)
        listed = _walk(part)  # first: no link anywhere, SHA256SUMS included, before anything is read
        sums = _read_sums(part)
        unlisted = sorted(set(listed) - set(sums))
        missing = sorted(set(sums) - set(listed))
        if unlisted or missing:
            what = f"files its {SUMS} does not list: {', '.join(unlisted[:5])}" if unlisted else ""
            what = what or f"no file {', '.join(missing[:5])}, which its {SUMS} lists"
            raise ConfigError(f"{part} holds {what}", tip="Download the artifact again: it is not as published.")
        targets = sorted({name.split("/", 1)[0] for name in sums if "/" in name})
        for target in targets:
            if target not in config.targets:
                msg = f"{part} holds the target {target}, which this project's targets do not name"
                raise ConfigError(msg, tip=f"The project's targets are {', '.join(config.targets)}.")
            if target in found:
                msg = f"the target {target} is in both {found[target].part} and {part}"
                raise ConfigError(msg, tip="Give merge each job's dist/ folder once.")
            prefix = f"{target}/"
            own = {k.removeprefix(prefix): v for k, v in sums.items() if k.startswith(prefix)}
            found[target] = Source(target, part, part / target, own)
        log.info(f"part {part}: {', '.join(targets)}; {len(sums)} files listed")
    absent = [t for t in config.targets if t not in found]
    if absent:
        msg = f"no part holds the target{'s' if len(absent) > 1 else ''} {', '.join(absent)}"
        tip = "Check that every job of the matrix succeeded and uploaded its dist/, and give merge all of them."
        raise ConfigError(msg, tip=tip)
    return [found[t] for t in config.targets]


def _check_part(part: Path) -> None:
    """``part`` exists and is a folder, not a link to one."""
    try:
        info = os.lstat(part)
    except FileNotFoundError as err:
        tip = "Check the path (a shell pattern that matches nothing is passed on as written)."
        raise ConfigError(f"the part {part} does not exist", tip=tip) from err
    except OSError as err:
        raise ConfigError(f"{part} cannot be read: {err.strerror or err}", tip=_PART_TIP) from err
    if not stat.S_ISDIR(info.st_mode):
        kind = "a link (give the folder it points to)" if stat.S_ISLNK(info.st_mode) else "not a folder"
        raise ConfigError(f"{part} is {kind}", tip=_PART_TIP)


def _read_sums(part: Path) -> dict[str, str]:
    """path -> sha256 from ``part``'s SHA256SUMS: plain relative paths, each once, every line well formed."""
    try:
        data = read_file(part / SUMS, ConfigError, _PART_TIP, limit=16 << 20)
    except FileNotFoundError as err:
        raise ConfigError(f"{part} has no {SUMS}", tip=_PART_TIP) from err
    sums: dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        found = _SUM_LINE.fullmatch(line)
        name = found[2] if found else ""
        if not found or not _plain_path(name) or name in sums:
            msg = f"{part}/{SUMS}, line {number}: not a sha256 and a plain relative path listed once"
            raise ConfigError(msg, tip="Download the artifact again: it is not as published.")
        sums[name] = found[1]
    if not sums:
        raise ConfigError(f"{part}/{SUMS} lists no file", tip=_PART_TIP)
    return sums


def _plain_path(name: str) -> bool:
    """``cp311-x86_64/sbom-app-1.0-cp311-x86_64.cdx.json``: inside a target's folder, with no ``..``,
    ``.``, empty or hidden component; or ``images.json`` or ``targets.json`` at the top."""
    if name in (_targets.IMAGES, _targets.INDEX):
        return True
    parts = name.split("/")
    if len(parts) < 2 or "\\" in name or any(not p or p.startswith(".") for p in parts):
        return False
    try:
        parse_target(parts[0])
    except WheelbarrowError:
        return False
    return True


def _walk(part: Path) -> list[str]:
    """The regular files in ``part`` (relative, posix), leaving out SHA256SUMS files and markers (merge
    writes its own). At its top only target folders and the files publish writes there; below, folders
    and files with one link each, at most :data:`DEPTH` deep. Anything else is a ConfigError: nothing is
    followed or opened here."""
    files: list[str] = []
    stack: list[tuple[Path, int]] = [(part, 0)]
    while stack:
        folder, depth = stack.pop()
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            info = entry.stat(follow_symlinks=False)
            mode = info.st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                kind = "a link" if stat.S_ISLNK(mode) else "not a regular file"
                raise ConfigError(f"{path} is {kind}: a published dist/ holds files only", tip=_PART_TIP)
            if stat.S_ISREG(mode) and info.st_nlink > 1:
                msg = f"{path} has {info.st_nlink} names (a hard link): a downloaded artifact's files have one"
                raise ConfigError(msg, tip=_PART_TIP)
            if depth == 0 and not _top_level(entry.name, stat.S_ISDIR(mode)):
                msg = f"{path} is not what publish writes at the top of a dist/ (target folders, {SUMS}, "
                msg += f"{_targets.INDEX}, {_targets.IMAGES})"
                raise ConfigError(msg, tip=_PART_TIP)
            if stat.S_ISDIR(mode):
                if depth + 1 > DEPTH:
                    raise ConfigError(f"{path} is nested deeper than publish ever writes", tip=_PART_TIP)
                stack.append((path, depth + 1))
            elif entry.name not in (SUMS, MARKER):
                files.append(path.relative_to(part).as_posix())
    return files


def _top_level(name: str, is_dir: bool) -> bool:
    if not is_dir:
        return name in (SUMS, MARKER, _targets.INDEX, _targets.IMAGES)
    try:
        parse_target(name)
    except WheelbarrowError:
        return False
    return True


def _copy(source: Source, folder: Path) -> None:
    """The target's listed files into ``folder`` (marked as a dist/ folder wheelbarrow wrote), each hashed
    where it now is; a hash that differs from the part's SHA256SUMS is a ConfigError."""
    folder.mkdir()
    mark(folder, "dist/ directory")
    for name, want in sorted(source.sums.items()):
        dest = folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(source.folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as stream, dest.open("wb") as out:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{source.folder / name} is not a regular file", tip=_PART_TIP)
            try:
                shutil.copyfileobj(stream, out, 1 << 20)
            except OSError as err:  # a full disk: say where
                raise OSError(err.errno, err.strerror, str(dest)) from err
        dest.chmod(0o644)
        if sha256_of(dest) != want:
            msg = f"{source.folder / name} does not match the sha256 its part's {SUMS} gives it"
            raise ConfigError(msg, tip="Download the artifact again: it changed after it was published.")


def _one(folder: Path, pattern: str, source: Source, what: str) -> Path:
    found = sorted(p for p in folder.glob(pattern) if p.is_file())
    if len(found) != 1:
        many = "several" if found else "no"
        msg = f"{source.folder} has {many} {what} ({pattern}): it is not a target's published dist/"
        raise ConfigError(msg, tip=_PART_TIP)
    return found[0]


def _manifest_of(folder: Path, source: Source, config: Config) -> Manifest:
    """The manifest in the target's wheelhouse tarball, which must name that target and the project, and
    which must list exactly the tarball's other members, each with its sha256 (see :func:`_members`)."""
    tarball = _one(folder, "wheelhouse-*.tar.gz", source, "wheelhouse tarball")
    tip = "Download the artifact again, or publish that target again: the tarball is not one publish wrote."
    try:
        _check_headers(tarball)
        hashes, text = _members(tarball)
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as err:
        raise WheelhouseError(f"{tarball.name} of target {source.target} cannot be read: {err}", tip=tip) from err
    if text is None:
        raise WheelhouseError(f"{tarball.name} of target {source.target} holds no manifest.json", tip=tip)
    manifest = Manifest.from_json(text)
    wanted = {w.file: w.sha256 for w in manifest.wheels}
    wanted["requirements.txt"] = hashlib.sha256(requirements_text(manifest.wheels).encode()).hexdigest()
    wanted["manifest.json"] = hashes.get("manifest.json", "")
    if hashes != wanted:
        odd = sorted(set(hashes) ^ set(wanted)) or sorted(n for n in hashes if hashes[n] != wanted[n])
        msg = f"{tarball.name} of target {source.target} does not hold what its manifest lists: {', '.join(odd[:5])}"
        raise WheelhouseError(msg, tip=tip)
    python, arch = parse_target(source.target)
    named = (manifest.target.python, manifest.target.machine, canonicalize_name(manifest.project.name))
    if named != (python, arch, canonicalize_name(config.project_name)):
        msg = f"{source.folder}: its wheelhouse is {manifest.project.name} for CPython {manifest.target.python} on "
        msg += f"{manifest.target.machine}, not {config.project_name} for the target {source.target}"
        raise WheelhouseError(msg, tip="Give merge the parts of this project, each in the folder of its target.")
    return manifest


def _check_headers(tarball: Path) -> None:
    """Read the tar headers in ``tarball`` before :mod:`tarfile` does: only regular files and pax headers
    of at most :data:`PAX_BYTES` (a GNU long name or a pax header is read whole into memory, so a small
    tarball could claim gigabytes), sizes in octal, and a proper end."""
    with gzip.open(tarball, "rb") as stream:
        while True:
            header = stream.read(512)
            if len(header) < 512:
                raise ValueError("it ends in the middle of a header")
            if header == bytes(512):
                return
            kind, field = header[156:157], header[124:136]
            if not re.fullmatch(rb"[0-7 \x00]*", field):  # base-256 sizes (over 8 GiB) included
                raise ValueError("a member's size is not written as publish writes it")
            size = int(field.strip(b" \x00") or b"0", 8)
            if kind not in (b"0", b"\x00", b"x") or (kind == b"x" and size > PAX_BYTES):
                raise ValueError(f"it holds a member of type {kind!r} ({size} bytes), which publish never writes")
            remaining = (size + 511) // 512 * 512
            while remaining:
                chunk = stream.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ValueError("it ends in the middle of a member")
                remaining -= len(chunk)


def _members(tarball: Path) -> tuple[dict[str, str], str | None]:
    """Each member's file name and sha256, and manifest.json's text; every member must be a regular file
    ``wheelhouse/<name>`` (no folder, no path), named once."""
    hashes: dict[str, str] = {}
    text = None
    with tarfile.open(tarball, "r|gz") as archive:
        for member in archive:
            name = member.name.removeprefix("wheelhouse/")
            if not member.isreg() or name == member.name or not _FILE_NAME.fullmatch(name) or name in hashes:
                raise ValueError(f"it holds {member.name!r}, which publish never writes")
            stream = archive.extractfile(member)
            digest = hashlib.sha256()
            data = b""
            while stream is not None and (chunk := stream.read(1 << 20)):
                digest.update(chunk)
                if name == "manifest.json":
                    data += chunk
                    if len(data) > DOCUMENT_BYTES:
                        raise ValueError("its manifest.json is larger than any manifest")
            hashes[name] = digest.hexdigest()
            if name == "manifest.json":
                text = data.decode("utf-8")
    return hashes, text


def _sbom_of(folder: Path, source: Source, config: Config, manifest: Manifest) -> dict[str, Any]:
    """The target's SBOM: CycloneDX of this project and version, of the shapes publish writes, with one
    component per wheel of the target's wheelhouse (its file name and sha256)."""
    path = _one(folder, "sbom-*.cdx.json", source, "SBOM")
    tip = "Publish that target again: its SBOM is not one publish wrote."
    version = manifest.project.version
    try:
        document = json.loads(read_file(path, WheelhouseError, tip, limit=DOCUMENT_BYTES), parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise WheelhouseError(f"{path} is not plain JSON: {err}", tip=tip) from err
    msg = f"{path} is not the CycloneDX SBOM of {config.project_name} {version} that publish writes"
    metadata = document.get("metadata") if isinstance(document, dict) else None
    root = metadata.get("component") if isinstance(metadata, dict) else None
    if (
        not isinstance(document, dict)
        or document.get("bomFormat") != "CycloneDX"
        or not isinstance(root, dict)
        or canonicalize_name(str(root.get("name", ""))) != canonicalize_name(config.project_name)
        or root.get("version") != version
        or not _components(document.get("components", []))
        or not _components(root.get("components", []))
        or not _dependencies(document.get("dependencies", []))
    ):
        raise WheelhouseError(msg, tip=tip)
    listed = {}
    for component in document.get("components", []):
        hashes = [h.get("content") for h in component.get("hashes", []) if isinstance(h, dict)]
        listed[component.get("bom-ref")] = hashes
    wheels = {w.file: [w.sha256] for w in manifest.wheels}
    if listed != wheels:
        odd = sorted(str(k) for k in set(listed) ^ set(wheels)) or sorted(k for k in wheels if listed[k] != wheels[k])
        raise WheelhouseError(f"{msg}: it does not list the target's wheels ({', '.join(odd[:5])})", tip=tip)
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _components(value: object) -> bool:
    """A list of objects, each with a string bom-ref and, if any, components of the same shape."""
    if not isinstance(value, list):
        return False
    return all(
        isinstance(c, dict) and isinstance(c.get("bom-ref"), str) and _components(c.get("components", []))
        for c in value
    )


def _dependencies(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(d, dict)
        and isinstance(d.get("ref"), str)
        and isinstance(d.get("dependsOn", []), list)
        and all(isinstance(r, str) for r in d.get("dependsOn", []))
        for d in value
    )


def _record_of(folder: Path, source: Source, push: str) -> tuple[str, str]:
    """(pushed reference with digest, image id) from the target's image record; it must have been pushed
    as ``push``-<target>."""
    path = _one(folder, "image-*.json", source, "image record")
    want = target_tag(push, source.target)
    tip = f"Run that target's job with publish --push {push} (each job pushes {push}-<its target>)."
    try:
        record = json.loads(read_file(path, WheelhouseError, tip, limit=DOCUMENT_BYTES))
    except (ValueError, RecursionError) as err:
        raise WheelhouseError(f"{path} is not JSON: {err}", tip=tip) from err
    pushed = record.get("pushed") if isinstance(record, dict) else None
    image_id = record.get("id") if isinstance(record, dict) else None
    if not isinstance(pushed, str) or not _PUSHED.fullmatch(pushed) or pushed.rsplit("@", 1)[0] != want:
        said = f"its record says {printable(pushed)[:300]}" if isinstance(pushed, str) else "its record names no push"
        msg = f"target {source.target} was not pushed as {want} (with a digest), so no index can name it: {said}"
        raise WheelhouseError(msg, tip=tip)
    if not isinstance(image_id, str) or not _IMAGE_ID.fullmatch(image_id):
        raise WheelhouseError(f"{path} records no image id", tip=tip)
    return pushed, image_id


# --- one SBOM over every target -----------------------------------------------------------------------


def combined_sbom(project: str, version: str, documents: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One CycloneDX 1.6 document: the project, depending on one component per target, each holding that
    target's components (bom-refs prefixed ``<target>/``, so a wheel two targets share stays two entries):
    its wheels and, for a distroless image, the Debian packages its SBOM lists under its application."""
    root_ref = f"{project}@{version}"
    components: list[dict[str, Any]] = []
    dependencies: list[dict[str, Any]] = [{"ref": root_ref, "dependsOn": [f"{root_ref}/{t}" for t, _ in documents]}]
    for target, document in documents:
        application = document.get("metadata", {}).get("component", {})
        own_root = str(application.get("bom-ref", ""))
        packages = application.get("components", [])  # a distroless image's Debian packages
        target_ref = f"{root_ref}/{target}"

        def ref(value: object, target: str = target, own_root: str = own_root, target_ref: str = target_ref) -> str:
            return target_ref if value == own_root else f"{target}/{value}"

        components.append(
            {
                "type": "application",
                "bom-ref": target_ref,
                "name": project,
                "version": version,
                "properties": [{"name": "wheelbarrow:target", "value": target}],
                "components": [
                    _prefixed(c, target) for c in (*packages, *document.get("components", [])) if isinstance(c, dict)
                ],
            }
        )
        for dependency in document.get("dependencies", []):
            if isinstance(dependency, dict) and "ref" in dependency:
                depends = [ref(d) for d in dependency.get("dependsOn", []) if isinstance(d, str)]
                dependencies.append({"ref": ref(dependency["ref"]), "dependsOn": depends})
    first = documents[0][1]
    serials = ",".join(sorted(str(d.get("serialNumber", "")) for _t, d in documents))
    metadata: dict[str, Any] = {
        "timestamp": first.get("metadata", {}).get("timestamp"),
        "component": {
            "type": "application",
            "bom-ref": root_ref,
            "name": project,
            "version": version,
            "purl": f"pkg:pypi/{canonicalize_name(project)}@{version}",
        },
    }
    if "tools" in first.get("metadata", {}):
        metadata["tools"] = first["metadata"]["tools"]
    combined = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'wheelbarrow-merge:' + serials)}",
        "version": 1,
        "metadata": {k: v for k, v in metadata.items() if v is not None},
        "components": components,
        "dependencies": dependencies,
    }
    return json.dumps(combined, indent=2) + "\n"


def _prefixed(component: dict[str, Any], target: str) -> dict[str, Any]:
    out = dict(component)
    if "bom-ref" in out:
        out["bom-ref"] = f"{target}/{out['bom-ref']}"
    if isinstance(out.get("components"), list):
        out["components"] = [_prefixed(c, target) for c in out["components"] if isinstance(c, dict)]
    return out
