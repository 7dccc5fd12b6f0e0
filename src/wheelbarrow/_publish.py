"""Stage 9, publish: CI artifacts in ``dist/``, deterministic given the same inputs.

* ``wheelhouse-<project>-<version>-<python>-<platform>.tar.gz``: the wheels,
  requirements.txt and manifest.json, sorted, with fixed mtimes and owners;
* ``sbom-<project>-<version>.cdx.json``: CycloneDX (cyclonedx-python-lib), each
  wheel with its purl and sha256 and, inside each repaired wheel, the native
  libraries it carries (from auditwheel's own SBOM) and those it expects from
  the runtime base (looked up in the base's package database); for a distroless
  image, the application's own components are the Debian packages its files came
  from, with their versions (read from the image's ``/var/lib/dpkg/status.d/``);
* ``image-<project>-<version>.tar`` (``docker save``, its entries restamped with
  one mtime: engines that write an OCI layout stamp ``index.json`` and
  ``blobs/sha256/`` with the time of saving) and ``.json`` (id, digests);
* optionally ``simple/``: a PEP 503 index of the wheels;
* ``SHA256SUMS`` over all of it, for ``sha256sum -c``.

``dist/`` is assembled beside the old one and swapped in atomically.
"""

from __future__ import annotations

import gzip
import html
import io
import json
import re
import shutil
import tarfile
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from . import _wheelhouse
from ._cache import sha256_of
from ._config import Config
from ._engine import Engine
from ._guard import MARKER, scratch
from ._image import check_built_from, runtime_base_of, style_of, tag_of, target_tag
from ._log import Log
from ._manifest import Manifest, WheelEntry
from ._shapes import read_file
from ._wheelhouse import read_wheelhouse
from .errors import EngineCommandError, EngineError, WheelhouseError

PROPERTY = "wheelbarrow:provided-by"


@dataclass(frozen=True)
class Published:
    dist: Path
    files: tuple[str, ...]
    pushed: str | None
    image_id: str | None = None  # the image saved (and pushed): the one verify passed


def _platform(manifest: Manifest) -> str:
    tags = sorted({w.platform_tag for w in manifest.wheels if w.platform_tag != "any"})
    return tags[-1].split(".")[-1] if tags else "any"


def wheelhouse_tarball(wheelhouse: Path, manifest: Manifest, dest: Path) -> None:
    """A tar.gz whose bytes depend only on the files: sorted, mtime = SOURCE_DATE_EPOCH, root-owned."""
    names = sorted([w.file for w in manifest.wheels] + ["manifest.json", "requirements.txt"])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in names:
            data = (wheelhouse / name).read_bytes()
            info = tarfile.TarInfo(f"wheelhouse/{name}")
            info.size, info.mtime, info.mode = len(data), manifest.source_date_epoch, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            archive.addfile(info, io.BytesIO(data))
    with dest.open("wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as zipped:
        zipped.write(raw.getvalue())


#: The largest auditwheel SBOM read from a wheel (auditwheel's own are a few kB).
SBOM_BYTES = 1 << 20


def _grafted_components(wheel: Path) -> list[Component]:
    """The system packages auditwheel recorded in the wheel's own SBOM (dist-info/sboms/auditwheel.cdx.json)."""
    with zipfile.ZipFile(wheel) as archive:
        # only auditwheel's own record, in the wheel's .dist-info (a package may ship files of that name)
        infos = [
            i for i in archive.infolist() if re.fullmatch(r"[^/]+\.dist-info/sboms/auditwheel\.cdx\.json", i.filename)
        ]
        try:
            data = json.loads(archive.read(infos[0])) if infos and infos[0].file_size <= SBOM_BYTES else {}
        except (ValueError, RecursionError):
            data = {}
    components = data.get("components", []) if isinstance(data, dict) else []
    out = []
    for item in components if isinstance(components, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        purl = item.get("purl", "")
        version = item.get("version")
        if not isinstance(purl, str) or not purl.startswith("pkg:") or purl.startswith("pkg:pypi/"):
            continue
        if version is not None and not isinstance(version, str):
            continue
        try:
            PackageURL.from_string(purl)
        except ValueError:
            continue
        out.append(
            Component(
                name=item["name"],
                version=version,
                type=ComponentType.LIBRARY,
                purl=PackageURL.from_string(purl),
                bom_ref=f"{wheel.name}/{item['name']}",
                properties=[Property(name=PROPERTY, value="grafted into the wheel by auditwheel")],
            )
        )
    return out


BASE_PACKAGES = r"""
for soname in "$@"; do
  pkg=$(dpkg -S "*/$soname" 2>/dev/null | head -n 1 | cut -d: -f1)
  ver=$(test -n "$pkg" && dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)
  echo "$soname|$pkg|$ver"
done
"""


def base_packages(engine: Engine, base: str, sonames: list[str]) -> dict[str, tuple[str, str]]:
    """soname -> (Debian package, version) in the runtime base; empty where it has no dpkg."""
    if not sonames:
        return {}
    result = engine.run_image(base, ["sh", "-c", BASE_PACKAGES, "sh", *sonames])
    out: dict[str, tuple[str, str]] = {}
    for line in result.output.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[1]:
            out[parts[0]] = (parts[1], parts[2])
    return out


def _wheel_component(entry: WheelEntry, wheelhouse: Path, base: str, packages: dict[str, tuple[str, str]]) -> Component:
    component = Component(
        name=entry.name,
        version=entry.version,
        type=ComponentType.LIBRARY,
        purl=PackageURL("pypi", None, entry.name, entry.version, qualifiers={"file_name": entry.file}),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=entry.sha256)],
        bom_ref=entry.file,
        properties=[
            Property(name="wheelbarrow:origin", value=entry.origin),
            Property(name="wheelbarrow:platform-tag", value=entry.platform_tag),
        ],
    )
    for sub in _grafted_components(wheelhouse / entry.file) if entry.grafted_libraries else []:
        component.components.add(sub)
    from_base: dict[str, list[str]] = {}
    for soname in entry.expected_from_base:
        from_base.setdefault(packages.get(soname, (soname, ""))[0], []).append(soname)
    for package, sonames in sorted(from_base.items()):
        version = packages.get(sonames[0], (package, ""))[1]
        component.components.add(
            Component(
                name=package,
                version=version or None,
                type=ComponentType.LIBRARY,
                purl=PackageURL("deb", "debian", package, version) if version else None,
                bom_ref=f"{entry.file}/{package}",
                properties=[
                    Property(name=PROPERTY, value=f"runtime base {base}"),
                    Property(name="wheelbarrow:sonames", value=" ".join(sonames)),
                ],
            )
        )
    return component


def image_packages(engine: Engine, tag: str) -> list[dict[str, str]]:
    """The dpkg entries of a distroless image (``/var/lib/dpkg/status.d/``, copied out of a container that
    never starts: the image has no shell), as field -> value, sorted by package."""
    packages = []
    with scratch("status.d") as tmp:
        engine.copy_from_image(tag, PurePosixPath("/var/lib/dpkg/status.d"), tmp)
        for entry in sorted(p for p in tmp.iterdir() if p.is_file() and p.name != MARKER):
            fields = dict(re.findall(r"^([A-Za-z-]+): *(.*)$", _text(entry), re.MULTILINE))
            if fields.get("Package") and fields.get("Version"):
                packages.append(fields)
    return packages


def _text(path: Path) -> str:
    return read_file(path, WheelhouseError, "Rebuild the image: wheelbarrow image.", limit=1 << 20).decode(
        "utf-8", "replace"
    )


def _package_component(fields: dict[str, str], tag: str) -> Component:
    name, version, arch = fields["Package"], fields["Version"], fields.get("Architecture", "")
    return Component(
        name=name,
        version=version,
        type=ComponentType.LIBRARY,
        purl=PackageURL("deb", "debian", name, version, qualifiers={"arch": arch} if arch else None),
        bom_ref=f"deb:{name}@{version}",
        properties=[Property(name=PROPERTY, value=f"distroless image {tag}")],
    )


def sbom(
    manifest: Manifest,
    wheelhouse: Path,
    requirements_sha: str,
    engine: Engine,
    base: str,
    packages_of: tuple[str, list[dict[str, str]]] = ("", []),
) -> str:
    """The CycloneDX SBOM; ``packages_of`` (an image's tag and its dpkg entries) adds a distroless image's
    Debian packages as components of the application."""
    stamp = datetime.fromtimestamp(manifest.source_date_epoch, tz=UTC)
    project = manifest.project
    root = Component(
        name=project.name,
        version=project.version,
        type=ComponentType.APPLICATION,
        purl=PackageURL("pypi", None, project.name, project.version),
        bom_ref=f"{project.name}@{project.version}",
    )
    for fields in packages_of[1]:
        root.components.add(_package_component(fields, packages_of[0]))
    bom = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"wheelbarrow:{requirements_sha}"),
        metadata=BomMetaData(component=root, timestamp=stamp),
    )
    wanted = sorted({s for w in manifest.wheels for s in w.expected_from_base})
    packages = base_packages(engine, base, wanted)
    wheels = [_wheel_component(w, wheelhouse, base, packages) for w in manifest.wheels]
    for component in wheels:
        bom.components.add(component)
        bom.register_dependency(component, list(component.components))
    bom.register_dependency(root, wheels)
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def simple_index(wheelhouse: Path, manifest: Manifest, dest: Path) -> None:
    """A PEP 503 index: ``pip install --index-url file://.../simple`` or serve it over HTTP."""
    dest.mkdir()
    projects: dict[str, list[WheelEntry]] = {}
    for entry in manifest.wheels:
        projects.setdefault(entry.name, []).append(entry)
    links = "".join(f'<a href="{html.escape(n)}/">{html.escape(n)}</a>\n' for n in sorted(projects))
    (dest / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n", encoding="utf-8")
    for name, entries in sorted(projects.items()):
        (dest / name).mkdir()
        for entry in entries:
            shutil.copyfile(wheelhouse / entry.file, dest / name / entry.file)
        anchors = "".join(
            f'<a href="{html.escape(e.file)}#sha256={e.sha256}">{html.escape(e.file)}</a>\n' for e in entries
        )
        (dest / name / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n{anchors}</body></html>\n", encoding="utf-8"
        )


def normalise_archive(raw: Path, dest: Path, mtime: int) -> None:
    """Copy a tar with every entry's mtime set to ``mtime`` and owners to root, in the same order.

    The contents are untouched, so ``docker load`` reads it as before; only the
    headers that carry the time of ``docker save`` change.
    """
    with tarfile.open(raw, "r|") as source, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for member in source:
            member.mtime, member.uid, member.gid, member.uname, member.gname = mtime, 0, 0, "root", "root"
            member.pax_headers = {}  # drops sub-second times and atime/ctime records too
            out.addfile(member, source.extractfile(member) if member.isfile() else None)


def save_image(engine: Engine, tag: str, dest: Path, mtime: int) -> dict[str, Any]:
    image_id = engine.image_id(tag)
    if image_id is None:
        msg = f"there is no image {tag} to publish"
        raise WheelhouseError(
            msg, tip="Build it first (nox -s image), or publish the wheelhouse only with --skip-image."
        )
    raw = dest.with_name(dest.name + ".saving")
    try:
        engine.save(tag, raw)
        normalise_archive(raw, dest, mtime)
    except EngineCommandError as err:
        msg = f"saving the image {tag} failed:\n{err.tail()}"
        raise EngineError(msg, tip="Check the free disk space where dist/ is.") from err
    except tarfile.TarError as err:
        msg = f"the engine's archive of {tag} cannot be read: {err}"
        raise EngineError(msg, tip="Check the engine's health and free disk space, and run again.") from err
    finally:
        raw.unlink(missing_ok=True)
    dest.chmod(0o644)  # an artifact for others
    return {"tag": tag, "id": image_id, "repo_digests": engine.repo_digests(tag)}


def push_image(engine: Engine, tag: str, ref: str, log: Log) -> str:
    """Push the verified image ``tag`` as ``ref``. A tag made for the push only is not left behind when it
    fails; a name that was there before (the image's own tag, or one the user made) is never removed."""
    made = ref != tag and engine.image_id(ref) is None
    try:
        if ref != tag:
            engine.tag(tag, ref)
        digest = engine.push(ref)
    except EngineCommandError as err:
        if made:
            engine.discard_image(ref)
        msg = f"pushing {ref} failed:\n{err.tail(6)}"
        raise EngineError(msg, tip="Check the registry address and that you are logged in (docker login).") from err
    log.info(f"pushed {ref} ({digest})")
    return f"{ref}@{digest}" if digest else ref


def sha256sums(dist: Path) -> str:
    files = sorted(p for p in dist.rglob("*") if p.is_file() and p.name not in ("SHA256SUMS", MARKER))
    return "".join(f"{sha256_of(p)}  {p.relative_to(dist).as_posix()}\n" for p in files)


def publish(config: Config, engine: Engine, log: Log, *, skip_image: bool, simple: bool, push: str | None) -> Published:
    manifest, requirements_sha = read_wheelhouse(config.wheelhouse)
    project, version = manifest.project.name, manifest.project.version
    base = runtime_base_of(config, manifest, engine, log)  # the SBOM reads the base the image was built over
    pushed = image_id = None
    protected = (config.project_dir, config.cache_dir, config.wheelhouse)
    with _wheelhouse.replacing(config.dist_dir, "dist/ directory", key="dist-dir", protected=protected) as stage:
        python = manifest.target.python_tag
        tarball = stage / f"wheelhouse-{project}-{version}-{python}-{_platform(manifest)}.tar.gz"
        wheelhouse_tarball(config.wheelhouse, manifest, tarball)
        packages_of: tuple[str, list[dict[str, str]]] = ("", [])
        tag = tag_of(config, manifest)
        if engine.image_id(tag) and style_of(engine, tag, config, log) == "distroless":
            check_built_from(engine, tag, requirements_sha)
            packages_of = (tag, image_packages(engine, tag))
            log.info(f"SBOM: {len(packages_of[1])} Debian packages in the distroless image {tag}")
        sbom_text = sbom(manifest, config.wheelhouse, requirements_sha, engine, base, packages_of)
        stem = f"{project}-{version}" + (f"-{config.target}" if config.target else "")  # targets' files merge
        (stage / f"sbom-{stem}.cdx.json").write_text(sbom_text, encoding="utf-8")
        if simple:
            simple_index(config.wheelhouse, manifest, stage / "simple")
        if not skip_image:
            check_built_from(engine, tag, requirements_sha)
            log.info(f"saving image {tag}")
            image_tar = stage / f"image-{stem}.tar"
            info = save_image(engine, tag, image_tar, manifest.source_date_epoch)
            image_id = info["id"]
            if push:
                pushed = push_image(engine, tag, target_tag(push, config.target), log)
                info["pushed"] = pushed
                info["repo_digests"] = engine.repo_digests(tag)  # the push added one
            (stage / f"image-{stem}.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        (stage / "SHA256SUMS").write_text(sha256sums(stage), encoding="utf-8")
        files = tuple(
            sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file() and p.name != MARKER)
        )
    for name in files:
        if "/" not in name:
            log.info(f"  {config.dist_dir / name}")
    return Published(config.dist_dir, files, pushed, image_id)
