"""The distroless runtime without docker: the ELF resolver on this machine's own files, the closure's
copier, the dependency judge, the config keys, the build context and the SBOM's Debian packages."""

from __future__ import annotations

import _json
import json
import os
import shutil
import struct
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from tests.unit.conftest import ENVIRONMENT, make_wheelhouse, write_project
from wheelbarrow import _closure, _elf, _probe, _publish
from wheelbarrow._closure import Copier
from wheelbarrow._config import STDLIB_EXCLUDE, load_config
from wheelbarrow._engine import Engine
from wheelbarrow._image import STYLE_LABEL, style_of, write_context
from wheelbarrow._log import Log
from wheelbarrow._verify import dependency_problems
from wheelbarrow._wheelhouse import read_wheelhouse
from wheelbarrow.errors import ConfigError

PYTHON = os.path.realpath(sys.executable)
#: An extension module of this machine's CPython (its lib-dynload's _json).
JSON_MODULE = Path(_json.__file__)


def elf_with(entries: list[tuple[int, str]], *, machine: int = 62, interpreter: str = "") -> bytes:
    """A 64-bit little-endian ELF shared object whose dynamic section holds ``entries`` (tag, string); with
    ``interpreter``, an executable whose PT_INTERP names it."""
    names = [s for _tag, s in entries]
    strings = b"\0" + b"".join(s.encode() + b"\0" for s in names)
    dynamic = b"".join(struct.pack("<qQ", tag, strings.index(b"\0" + s.encode() + b"\0") + 1) for tag, s in entries)
    dynamic += struct.pack("<qQ", 0, 0)
    interp = interpreter.encode() + b"\0" if interpreter else b""
    data = b"\0" * 64 + strings + dynamic + interp
    phoff = len(data)
    phnum = 1 if interp else 0
    if interp:  # PT_INTERP, pointing at the string just before the program headers
        data += struct.pack("<IIQQQQQQ", 3, 4, phoff - len(interp), 0, 0, len(interp), len(interp), 1)
    shoff = len(data)
    section = "<IIQQQQIIQQ"
    sections = [
        struct.pack(section, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        struct.pack(section, 0, 3, 0, 0, 64, len(strings), 0, 0, 1, 0),
        struct.pack(section, 0, 6, 0, 0, 64 + len(strings), len(dynamic), 1, 0, 8, 0),
    ]
    ident = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    head = ident + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, phoff, shoff, 0, 64, 56, phnum, 64, 3, 0)
    return head + data[len(head) :] + b"".join(sections)


def test_the_reader_agrees_with_what_this_machines_python_links() -> None:
    found = _elf.read_path(PYTHON)
    assert found is not None
    assert found.interpreter.startswith("/lib")  # an executable: the dynamic loader it names
    assert "libc.so.6" in found.needed
    with Path(PYTHON).open("rb") as f:
        assert _elf.needed(f) == found.needed


def test_the_cache_and_the_resolver_find_this_machines_libraries() -> None:
    cache = _elf.ld_cache()
    assert any(Path(p).is_file() for p in cache["libc.so.6"])
    resolved = _elf.resolve([PYTHON], cache)
    assert resolved.missing == {}
    assert "libc.so.6" in resolved.found
    for soname, path in resolved.found.items():
        assert Path(path).name == soname or Path(path).resolve().is_file()
        assert _elf.read_path(path) is not None
    assert all(Path(i).exists() for i in resolved.interpreters)


def test_runpath_with_origin_wins_and_a_missing_library_is_named(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg.libs").mkdir()
    libc = _elf.resolve([PYTHON], _elf.ld_cache()).found["libc.so.6"]
    shutil.copy(libc, tmp_path / "pkg.libs" / "libdemo.so.1")  # a real library of this machine
    ext = tmp_path / "pkg" / "_ext.so"
    ext.write_bytes(elf_with([(1, "libdemo.so.1"), (1, "libnowhere.so.9"), (29, "$ORIGIN/../pkg.libs")]))
    resolved = _elf.resolve([str(ext)], {})
    assert resolved.found["libdemo.so.1"] == f"{tmp_path}/pkg/../pkg.libs/libdemo.so.1"
    assert resolved.missing == {"libnowhere.so.9": str(ext)}


def test_a_library_of_another_machine_is_not_a_match(tmp_path: Path) -> None:
    (tmp_path / "libs").mkdir()
    (tmp_path / "libs" / "libdemo.so.1").write_bytes(elf_with([], machine=183))  # aarch64
    ext = tmp_path / "_ext.so"
    ext.write_bytes(elf_with([(1, "libdemo.so.1"), (15, str(tmp_path / "libs"))]))  # DT_RPATH
    assert _elf.resolve([str(ext)], {}).missing == {"libdemo.so.1": str(ext)}


def test_what_an_elf_header_names_outside_the_library_folders_is_never_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absolute DT_NEEDED, an RPATH or RUNPATH into a bin folder (with ``$ORIGIN`` climbing out of the
    venv), a PT_INTERP that is a shell: the closure's resolver passes them over and names them, so the
    image has no shell and verify names what is missing. Libraries of the library folders still resolve."""
    shell = next(p for p in ("/bin/dash", "/bin/bash", "/usr/bin/dash") if _elf.read_path(p) is not None)
    venv = tmp_path / "venv"
    monkeypatch.setattr(_closure, "VENV", str(venv))
    (venv / "lib").mkdir(parents=True)
    libc = _elf.resolve([PYTHON], _elf.ld_cache()).found["libc.so.6"]
    shutil.copy(libc, venv / "lib" / "libown.so.1")  # a repaired wheel's own library, in the venv: admitted
    climb = "$ORIGIN/" + "../" * len(venv.parts) + "bin"
    ext = venv / "lib" / "_ext.so"
    ext.write_bytes(
        elf_with(
            [
                (1, shell),
                (1, Path(shell).name),
                (1, "sh"),
                (1, "libc.so.6"),
                (1, "libown.so.1"),
                (15, "/usr/bin:/bin"),
                (15, climb),
                (15, "$ORIGIN"),
            ],
            interpreter=shell,
        )
    )
    cache = _elf.ld_cache()
    folders = _closure.library_folders(cache)
    resolved = _elf.resolve([str(ext)], cache, admit=lambda p: _closure.admitted(p, folders, set()))
    assert Path(resolved.found["libc.so.6"]).resolve() == Path(libc).resolve()
    assert resolved.found["libown.so.1"] == f"{venv}/lib/libown.so.1"
    assert set(resolved.missing) == {shell, Path(shell).name, "sh"}
    assert resolved.refused
    assert all(Path(p).resolve().parent.name in ("bin", "sbin") for p in resolved.refused)
    assert not any(Path(p).resolve() == Path(shell).resolve() for p in resolved.found.values())
    assert resolved.interpreters[0] == shell  # then libc's own (libc.so.6 is an executable too)
    assert not _closure.is_loader(shell, folders, set())
    (loader,) = _elf.resolve([PYTHON], cache).interpreters[:1]
    assert _closure.is_loader(loader, folders, set())
    # a runtime-package's file (copied already) is admitted wherever it is; a file in the folders too
    assert _closure.admitted(shell, folders, {os.path.realpath(shell)})
    assert _closure.admitted(libc, folders, set())
    assert not _closure.admitted(str(tmp_path / "elsewhere" / "libx.so"), folders, set())
    # a relative name is the closure's own folder's, not the service's: never admitted, never copied
    relative = os.path.relpath(libc, Path.cwd())
    assert not _closure.admitted(relative, folders, {os.path.realpath(libc)})
    dest = tmp_path / "dest"
    dest.mkdir()
    copier = _closure.Copier(str(dest))
    copier.keep(relative)
    copier.keep("../" * 12 + "etc/passwd")
    assert copier.copied == []
    assert {p.name for p in tmp_path.iterdir()} == {"venv", "dest"}  # nothing written beside DEST either
    assert list(dest.iterdir()) == []


def test_the_closure_copies_links_as_links_and_what_they_lead_to(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "real" / "lib").mkdir(parents=True)
    (src / "real" / "lib" / "libx.so.1.2").write_bytes(b"x")
    (src / "real" / "lib" / "libx.so.1").symlink_to("libx.so.1.2")
    (src / "lib").symlink_to("real/lib")  # a merged /usr: the folder itself is a link
    (src / "std" / "test").mkdir(parents=True)
    (src / "std" / "os.py").write_text("")
    (src / "std" / "test" / "big.py").write_text("")
    dest.mkdir()
    copier = Copier(str(dest))
    copier.keep(str(src / "lib" / "libx.so.1"))
    copier.keep(str(src / "std"), ("test",))
    mirror = Path(f"{dest}{src}")
    assert (mirror / "lib").readlink() == Path("real/lib")
    assert (mirror / "real" / "lib" / "libx.so.1").readlink() == Path("libx.so.1.2")
    assert (mirror / "real" / "lib" / "libx.so.1.2").read_bytes() == b"x"
    assert (mirror / "std" / "os.py").is_file()
    assert not (mirror / "std" / "test").exists()
    assert copier.copied == [str(src / "real" / "lib" / "libx.so.1.2"), str(src / "std" / "os.py")]


@pytest.mark.parametrize(
    ("requires", "installed", "said"),
    [
        (["packaging"], {}, ["app 1.0 requires packaging, which is not installed."]),
        (
            ["packaging>=30"],
            {"packaging": "26.4"},
            ["app 1.0 has requirement packaging>=30, but you have packaging 26.4."],
        ),
        (["Packaging_Core>=1"], {"packaging-core": "2"}, []),  # names compared canonically
        (["tomli; python_version < '3.11'"], {}, []),  # marker false for the image's Python
        (["pywin32; sys_platform == 'win32'"], {}, []),
        (["uvloop; sys_platform == 'linux'"], {}, ["app 1.0 requires uvloop, which is not installed."]),
        (["eventlet>=0.24; extra == 'eventlet'"], {}, []),  # an extra nobody asked for
        (["not a requirement ("], {}, ["app 1.0 has an invalid requirement 'not a requirement ('."]),
    ],
)
def test_the_dependency_check_says_what_pip_check_says(
    requires: list[str], installed: dict[str, str], said: list[str]
) -> None:
    dists = [{"name": "app", "version": "1.0", "requires": requires}]
    dists += [{"name": n, "version": v, "requires": []} for n, v in installed.items()]
    assert dependency_problems({"distributions": dists, "environment": ENVIRONMENT}) == said


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (  # two versions of one distribution: one would shadow the other, and neither is judged alone
            [{"name": "Packaging", "version": "23.0", "requires": []}],
            ["packaging is installed 2 times (26.4, 23.0): one must go."],
        ),
        (  # a .dist-info folder without METADATA (or without a name): it is named, not skipped
            [{"name": None, "version": None, "requires": [], "path": "ghost-1.0.dist-info"}],
            ["ghost-1.0.dist-info has no METADATA with a Name and a Version."],
        ),
        (
            [{"name": "nover", "version": None, "requires": ["missing-one"], "path": "nover.dist-info"}],
            ["nover.dist-info has no METADATA with a Name and a Version."],
        ),
    ],
)
def test_a_duplicate_or_nameless_distribution_is_a_problem(extra: list[dict[str, Any]], said: list[str]) -> None:
    dists = [{"name": "app", "version": "1.0", "requires": ["packaging>=20"]}]
    dists += [{"name": "packaging", "version": "26.4", "requires": []}, *extra]
    assert dependency_problems({"distributions": dists, "environment": ENVIRONMENT}) == said


def test_the_probe_reports_a_dist_info_without_metadata(tmp_path: Path) -> None:
    (tmp_path / "ghost-1.0.dist-info").mkdir()
    (tmp_path / "good-2.dist-info").mkdir()
    (tmp_path / "good-2.dist-info" / "METADATA").write_text("Name: good\nVersion: 2\nRequires-Dist: x\n")
    assert _probe.distributions(tmp_path) == [
        {"name": None, "version": None, "requires": [], "path": "ghost-1.0.dist-info"},
        {"name": "good", "version": "2", "requires": ["x"], "path": "good-2.dist-info"},
    ]


def test_runtime_style_and_its_keys(tmp_path: Path) -> None:
    project = write_project(tmp_path)
    config = load_config(project, environ={})
    assert (config.runtime_style, config.stdlib_exclude, config.tzdata) == ("slim", STDLIB_EXCLUDE, False)
    config = load_config(project, environ={"WHEELBARROW_RUNTIME_STYLE": "distroless", "WHEELBARROW_TZDATA": "1"})
    assert (config.runtime_style, config.tzdata, config.gconv) == ("distroless", True, False)
    both = load_config(project, environ={"WHEELBARROW_TZDATA": "1", "WHEELBARROW_GCONV": "true"})
    assert (both.tzdata, both.gconv) == (True, True)
    with pytest.raises(ConfigError, match="'distrolss', which is not one of 'slim', 'distroless'"):
        load_config(project, environ={"WHEELBARROW_RUNTIME_STYLE": "distrolss"})
    write_project(tmp_path, 'stdlib-exclude = ["test", "a b"]')
    with pytest.raises(ConfigError, match="stdlib-exclude has 'a b'"):
        load_config(project, environ={})


def test_the_distroless_context_carries_the_closure_and_its_arguments(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", 'runtime-style = "distroless"\nruntime-packages = ["libzstd1"]')
    shutil.copytree(make_wheelhouse(tmp_path / "w"), project / "wheelhouse")
    config = load_config(project, environ={})
    manifest, _ = read_wheelhouse(config.wheelhouse)
    context = tmp_path / "context"
    context.mkdir()
    args = write_context(config, manifest, context)
    assert args["STDLIB_EXCLUDE"] == ",".join(STDLIB_EXCLUDE)
    assert (args["RUNTIME_PACKAGES"], args["EXTRAS"]) == ("libzstd1", "")
    for environ, extras in (
        ({"WHEELBARROW_GCONV": "1"}, "gconv"),
        ({"WHEELBARROW_GCONV": "1", "WHEELBARROW_TZDATA": "1"}, "tzdata gconv"),
    ):
        (tmp_path / f"c-{extras}").mkdir()
        given = write_context(load_config(project, environ=environ), manifest, tmp_path / f"c-{extras}")
        assert given["EXTRAS"] == extras
    assert sorted(p.name for p in (context / "closure" / "wheelbarrow").iterdir()) == [
        "__init__.py",
        "_closure.py",
        "_elf.py",
    ]
    dockerfile = (context / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM ${BASE} AS slim" in dockerfile
    assert dockerfile.index("\nFROM slim AS closure\n") < dockerfile.index("\nFROM scratch\n")
    shutil.copytree(project / "wheelhouse", write_project(tmp_path / "s") / "wheelhouse")
    (tmp_path / "sc").mkdir()
    slim = write_context(load_config(tmp_path / "s", environ={}), manifest, tmp_path / "sc")
    assert "STDLIB_EXCLUDE" not in slim
    assert "\nFROM scratch\n" not in (tmp_path / "sc" / "Dockerfile").read_text(encoding="utf-8")


def test_distroless_needs_wheelbarrows_own_dockerfile(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", 'runtime-style = "distroless"\nruntime-dockerfile = "Dockerfile"')
    (project / "Dockerfile").write_text("FROM x\n")
    shutil.copytree(make_wheelhouse(tmp_path / "w"), project / "wheelhouse")
    config = load_config(project, environ={})
    manifest, _ = read_wheelhouse(config.wheelhouse)
    (tmp_path / "c").mkdir()
    with pytest.raises(ConfigError, match="builds from wheelbarrow's own Dockerfile") as caught:
        write_context(config, manifest, tmp_path / "c")
    assert "Remove runtime-dockerfile" in caught.value.tip


def test_the_sbom_lists_the_debian_packages_of_a_distroless_image(tmp_path: Path) -> None:
    wheelhouse = make_wheelhouse(tmp_path)
    manifest, sha = read_wheelhouse(wheelhouse)
    packages = [
        {"Package": "libssl3", "Version": "3.0.17-1~deb12u2", "Architecture": "amd64"},
        {"Package": "tzdata", "Version": "2025b-0+deb12u1", "Architecture": "all"},
    ]
    no_engine: Any = None  # no expected_from_base and no grafted library: the engine is never asked
    text = _publish.sbom(manifest, wheelhouse, sha, no_engine, "base", ("demo:1-distroless", packages))
    root = json.loads(text)["metadata"]["component"]
    assert [c["purl"] for c in root["components"]] == [
        "pkg:deb/debian/libssl3@3.0.17-1~deb12u2?arch=amd64",
        "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all",
    ]
    assert root["components"][0]["properties"] == [
        {"name": "wheelbarrow:provided-by", "value": "distroless image demo:1-distroless"}
    ]
    plain = json.loads(_publish.sbom(manifest, wheelhouse, sha, no_engine, "base"))
    assert "components" not in plain["metadata"]["component"]


class Labelled:
    """An engine that knows one label of one image (style_of asks nothing else)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def label(self, _ref: str, key: str) -> str:
        return self.value if key == STYLE_LABEL else ""


@pytest.mark.parametrize(
    ("label", "configured", "taken", "said"),
    [
        ("distroless", "slim", "distroless", True),
        ("slim", "distroless", "slim", True),
        ("slim", "slim", "slim", False),
        ("", "distroless", "distroless", False),  # an image from before the label: the configured style
        ("scratch; rm -rf /", "slim", "slim", False),  # a label wheelbarrow never writes is not a style
    ],
)
def test_an_image_is_judged_by_the_style_its_label_says(
    tmp_path: Path, label: str, configured: str, taken: str, *, said: bool
) -> None:
    config = load_config(write_project(tmp_path), environ={"WHEELBARROW_RUNTIME_STYLE": configured})
    lines: list[str] = []
    engine = cast("Engine", Labelled(label))
    assert style_of(engine, "app:1", config, Log(sink=lines.append)) == taken
    assert bool(lines) is said
    if said:
        head = f"the image app:1 is {label} (its {STYLE_LABEL} label), though runtime-style is {configured}"
        assert lines == [f"{head}: it is taken as {label}"]


@pytest.mark.parametrize("style", ["status", "status.d"])
def test_a_runtime_package_named_with_its_architecture_or_version_is_found(tmp_path: Path, style: str) -> None:
    dpkg = tmp_path / "var" / "lib" / "dpkg"
    entry = "Package: libmagic1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:5.44-3\n"
    if style == "status":
        dpkg.mkdir(parents=True)
        (dpkg / "status").write_text(entry + "\nPackage: gone\nStatus: deinstall ok config-files\n")
    else:  # a distroless image's: one file per package, no Status line
        (dpkg / "status.d").mkdir(parents=True)
        (dpkg / "status.d" / "libmagic1").write_text(entry.replace("Status: install ok installed\n", ""))
    names = ["libmagic1", "libmagic1:amd64", "libmagic1=1:5.44-3", "libmagic1:amd64=1:5.44-3", "gone", "libmagic"]
    assert _probe.installed(names, tmp_path) == dict(zip(names, [True] * 4 + [False] * 2, strict=True))
    assert _probe.installed(["libmagic1"], tmp_path / "nothing") == {"libmagic1": None}


def test_an_extension_module_is_told_from_a_library_by_what_it_exports(tmp_path: Path) -> None:
    """A shared object is imported by verify only when it exports PyInit_<its name>: a plain library a
    package keeps beside its modules (pkg/lib/libfoo.so) is checked for its libraries, never imported."""
    module = JSON_MODULE
    found = _elf.read_path(str(module))
    assert found is not None
    assert found.has_symbols
    assert "PyInit__json" in found.inits
    assert _probe.is_module(module, found)
    libc = Path(_elf.resolve([PYTHON], _elf.ld_cache()).found["libc.so.6"])
    shutil.copy(libc, tmp_path / "libfoo.so")
    plain = _elf.read_path(str(tmp_path / "libfoo.so"))
    assert plain is not None
    assert plain.inits == ()
    assert not _probe.is_module(tmp_path / "libfoo.so", plain)
    shutil.copy(module, tmp_path / "renamed.so")  # exports PyInit__json, not PyInit_renamed: import would fail
    assert not _probe.is_module(tmp_path / "renamed.so", _elf.read_path(str(tmp_path / "renamed.so")))
    # no symbol table to read: named like a module, it is one (the import then says)
    assert _probe.is_module(tmp_path / "x.so", None)


@pytest.mark.parametrize("keep", [4, 20, 64, 100, 1000])
def test_a_truncated_elf_file_is_unreadable_not_skipped(tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "x.cpython-311-x86_64-linux-gnu.so"
    cut.write_bytes(JSON_MODULE.read_bytes()[:keep])
    assert _probe.elf_kind(cut) == "unreadable"
    (tmp_path / "text.so").write_bytes(b"not ELF at all")
    assert _probe.elf_kind(tmp_path / "text.so") is None


STATUS = """\
Package: libmagic1
Status: install ok installed
Priority: optional
Depends: libbz2-1.0, libc6 (>= 2.33), liblzma5 (>= 5.1.1alpha+20120614), libmagic-mgc (= 1:5.44-3), zlib1g (>= 1:1.1.4)

Package: libmagic-mgc
Status: install ok installed
Priority: optional
Depends: missing-one | libc6:any, libblas.so.3

Package: libopenblas0
Status: install ok installed
Priority: optional
Provides: libblas.so.3, libopenblas.so.0
Pre-Depends: dash

Package: libc6
Status: install ok installed
Priority: optional
Depends: libgcc-s1

Package: libgcc-s1
Status: install ok installed
Priority: optional
Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)

Package: gcc-12-base
Status: install ok installed
Priority: required

Package: dash
Status: install ok installed
Essential: yes
Priority: required
Depends: debianutils

Package: libbz2-1.0
Status: install ok installed
Depends: perl-base

Package: perl-base
Status: install ok installed
Essential: yes

Package: liblzma5
Status: deinstall ok config-files

Package: zlib1g
Status: install ok installed
Depends: libc6
 (>= 2.14)
"""


def test_runtime_packages_bring_what_they_depend_on_but_never_the_base_system() -> None:
    """libmagic1's magic database is libmagic-mgc's: the dependencies are followed (alternatives, virtual
    packages, multi-line fields, cycles), never into the Essential or required base (dash, perl-base,
    gcc-12-base), nor to a package that is not installed."""
    assert _closure.dependencies(("libmagic1",), STATUS) == [
        "libbz2-1.0", "libc6", "libgcc-s1", "libmagic-mgc", "libopenblas0", "zlib1g",
    ]  # fmt: skip
    assert _closure.dependencies(("zlib1g",), STATUS) == ["libc6", "libgcc-s1"]
    assert _closure.dependencies(("dash",), STATUS) == []  # named, it is copied; its own needs are the base's
    assert _closure.dependencies(("not-installed",), STATUS) == []
    assert _closure.dependencies((), STATUS) == []
