"""runtime-style = "distroless": the example service's image FROM scratch, verified by the same checks,
serving against a real PostgreSQL, running psycopg2's own suite, with no shell; reproducible; a library
an extension loads by name is named by verify, and copied once it is listed."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import runpy
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    PROJECTS,
    REPO,
    RUNTIME_BASE,
    Build,
    BuiltImage,
    Postgres,
    Runner,
    copy_project,
    exercise_service,
    run_psycopg2_suite,
    serving,
    sh,
)
from wheelbarrow._config import STDLIB_EXCLUDE, load_config
from wheelbarrow._image import write_context
from wheelbarrow._wheelhouse import read_wheelhouse

DISTROLESS = "example-service:0.1.0-distroless"
MAX_BYTES = 70_000_000


#: What bench/image_sizes.py measures as the smallest distroless image: the default stdlib-exclude and the
#: modules (with the libraries their C parts link) that neither the service, gunicorn nor psycopg2 import.
NEVER_IMPORTED: tuple[str, ...] = runpy.run_path(str(REPO / "bench" / "image_sizes.py"))["NEVER_IMPORTED"]


@pytest.fixture(scope="session", params=["default", "lean"])
def distroless_image(wheelbarrow: Runner, example_build: Build, request: pytest.FixtureRequest) -> Iterator[str]:
    """The example's distroless image with the default stdlib-exclude, and with the smallest one measured
    (every test below runs on both: the smallest image passes everything the default one does)."""
    tag = DISTROLESS if request.param == "default" else f"{DISTROLESS}-lean"
    lean = ("-C", "stdlib-exclude=" + ",".join((*STDLIB_EXCLUDE, *NEVER_IMPORTED))) if request.param == "lean" else ()
    project = str(example_build.project)
    out = wheelbarrow("image", "--project", project, "--runtime-style", "distroless", "--image-tag", tag, *lean)
    assert out.returncode == 0, out.output[-6000:]
    assert f"image {tag}: all 14 checks passed (network off)" in out.output
    yield tag
    sh(["docker", "rmi", "-f", tag], check=False)


def files_of(tag: str) -> dict[str, tarfile.TarInfo]:
    """Every entry of the image's one layer, as ``docker save`` writes it (nothing of a container's)."""
    saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as image:
        (manifest,) = json.loads(image.extractfile("manifest.json").read())  # type: ignore[union-attr]
        (layer,) = manifest["Layers"]  # FROM scratch, one COPY
        with tarfile.open(fileobj=image.extractfile(layer)) as files:
            return {m.name.rstrip("/"): m for m in files.getmembers()}


def test_the_distroless_image_holds_only_what_the_service_executes(distroless_image: str, example_build: Build) -> None:
    size = int(sh(["docker", "image", "inspect", "--format", "{{.Size}}", distroless_image]).output)
    print(f"distroless image of the example service: {size / 1e6:.1f} MB")
    assert size <= MAX_BYTES
    files = files_of(distroless_image)
    for absent in ("bin/sh", "usr/bin/dash", "usr/bin/bash", "usr/bin/ls", "usr/bin/apt-get", "usr/bin/dpkg",
                   "usr/bin/perl", "usr/bin/ldd", "usr/bin/pip", "usr/lib/python3.11/test",
                   "usr/lib/python3.11/idlelib", "usr/lib/python3.11/ensurepip", "usr/share/zoneinfo"):  # fmt: skip
        assert absent not in files, absent
    for present in ("usr/bin/python3.11", "usr/lib/python3.11/json/__init__.py", "opt/venv/bin/gunicorn",
                    "etc/ssl/certs/ca-certificates.crt", "etc/ld.so.cache", "usr/lib/x86_64-linux-gnu/libssl.so.3",
                    "usr/lib64/ld-linux-x86-64.so.2", "var/lib/dpkg/status.d/libssl3", "etc/os-release",
                    "var/lib/dpkg/status.d/base-files", "usr/lib/locale/C.utf8/LC_CTYPE",
                    "usr/sbin/ldconfig"):  # fmt: skip
        assert present in files, present
    assert files["lib64"].issym()  # the loader the ELF files name, /lib64/ld-linux-x86-64.so.2, as in the base
    assert not any(n.endswith(".whl") for n in files)
    assert files["home/app"].uid == 10001
    assert files["home/app"].mode & 0o777 == 0o700
    epoch = read_wheelhouse(example_build.wheelhouse)[0].source_date_epoch
    assert {m.mtime for m in files.values()} == {epoch}  # SOURCE_DATE_EPOCH everywhere
    record = sh(["docker", "run", "--rm", "--entrypoint", "python", distroless_image, "-c",
                 "print(open('/usr/share/wheelbarrow/closure.json').read())"]).output  # fmt: skip
    closure = json.loads(record)
    assert (closure["source_date_epoch"], closure["missing"]) == (epoch, [])
    assert {"libssl3", "libc6", "libc-bin", "python3.11-minimal", "ca-certificates"} <= set(closure["dpkg_packages"])
    shell = sh(["docker", "run", "--rm", "--entrypoint", "sh", distroless_image, "-c", "true"], check=False)
    assert shell.returncode != 0
    assert 'exec: "sh": executable file not found' in shell.output
    accounts = sh(["docker", "run", "--rm", "--entrypoint", "python", distroless_image, "-c",
                   "import pwd; print(sorted(p.pw_name for p in pwd.getpwall()))"]).output  # fmt: skip
    assert accounts.strip() == "['app', 'root']"
    # what the adversary's pass found failing at run time: the image's own LANG, a library found by name
    at_run_time = sh(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", distroless_image, "-c",
                      ("import locale, ctypes.util; locale.setlocale(locale.LC_ALL, ''); "
                       "print(locale.getlocale()[1], ctypes.util.find_library('ssl'))")]).output  # fmt: skip
    assert at_run_time.split() == ["UTF-8", "libssl.so.3"], at_run_time
    # and from the adversary's second pass: its own group by its id; a service's port by its name as in the
    # runtime base (python:slim has netbase's /etc/services; the bootstrapped base has none)
    code = (
        "import grp, os, socket\n"
        "try: port = socket.getservbyname('https')\n"
        "except OSError: port = None\n"
        "print(grp.getgrgid(os.getgid()).gr_name if os.getuid() else 'root', port)"
    )
    named = sh(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", distroless_image, "-c", code])
    in_base = sh(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", RUNTIME_BASE, "-c", code])
    assert named.output.split()[0] == "app", named.output
    assert named.output.split()[1] == in_base.output.split()[1], (named.output, in_base.output)


def test_the_distroless_service_answers_and_writes_to_postgres(distroless_image: str, postgres: Postgres) -> None:
    with serving(distroless_image, "gunicorn", postgres.dsn) as (name, base):
        exercise_service(base, b"from the distroless image")
        uid = sh(["docker", "exec", name, "python", "-c", "import os; print(os.getuid())"]).output
        assert uid.strip() == "10001"
        tls = sh(["docker", "exec", name, "python", "-c",
                  "import ssl; print(ssl.create_default_context().cert_store_stats()['x509_ca'] > 100)"])  # fmt: skip
        assert tls.output.strip() == "True"  # the CA bundle is where OpenSSL looks


def test_psycopg2_own_test_suite_passes_in_the_distroless_image(
    distroless_image: str, postgres: Postgres, cache_dir: Path, tmp_path: Path
) -> None:
    run_psycopg2_suite(distroless_image, postgres, cache_dir, tmp_path)


#: The mtimes of every file and folder under /opt in an image, read by its own Python (no shell needed).
MTIMES = (
    "import os; print(sorted({int(os.lstat(os.path.join(r, n)).st_mtime) "
    "for r, ds, fs in os.walk('/opt') for n in ds + fs} | {int(os.lstat('/opt').st_mtime)}))"
)


@pytest.mark.parametrize("style", ["distroless", "slim"])
def test_two_builds_give_the_same_image_id_and_another_epoch_stamps_every_file(
    example_build: Build, tmp_path: Path, style: str
) -> None:
    """wheelbarrow's own context, built twice by BuildKit with no build cache: one image id. Then with the
    build cache and another epoch (the same files): every file carries the new epoch, none the old one
    (BuildKit leaves SOURCE_DATE_EPOCH out of its cache keys, and a COPY's key ignores mtimes)."""
    config = load_config(example_build.project, environ={"WHEELBARROW_RUNTIME_STYLE": style})
    manifest, _ = read_wheelhouse(config.wheelhouse)
    ids = []
    for n, (epoch, cache) in enumerate(
        [(manifest.source_date_epoch, "--no-cache"), (manifest.source_date_epoch, "--no-cache"), (1234567890, "")]
    ):
        context = tmp_path / f"context-{n}"
        context.mkdir()
        args = {
            "BASE": RUNTIME_BASE,
            **write_context(config, dataclasses.replace(manifest, source_date_epoch=epoch), context),
        }
        tag = f"example-service:repro-{style}-{n}"
        argv = ["docker", "build", *([cache] if cache else []), "--network", "none", "-t", tag]
        argv += [a for k, v in args.items() for a in ("--build-arg", f"{k}={v}")]
        sh([*argv, str(context)], env={"DOCKER_BUILDKIT": "1"})
        ids.append(sh(["docker", "image", "inspect", "--format", "{{.Id}}", tag]).output.strip())
        try:
            if style == "distroless":
                assert {m.mtime for m in files_of(tag).values()} == {epoch}
            said = sh(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", tag, "-c", MTIMES])
            assert json.loads(said.output.strip().splitlines()[-1]) == [epoch]  # the venv and /opt
        finally:
            sh(["docker", "rmi", tag])
    assert ids[0] == ids[1]
    assert ids[2] != ids[0]


def test_a_library_loaded_by_name_is_named_by_verify_then_copied_once_listed(
    wheelbarrow: Runner, tmp_path: Path
) -> None:
    """dlopen-app's extension loads libzstd.so.1 by name when imported: the slim base has it, the closure
    cannot know it. verify fails naming it (not the service, at run time); with runtime-packages =
    ["libzstd1"] the closure copies the package and every check passes; with a shell listed too, verify
    fails naming it (the closure copies each runtime package whole)."""
    project = copy_project(PROJECTS / "dlopen-app", tmp_path / "dlopen-app")
    tag = "dlopen-app:test-distroless"
    try:
        assert wheelbarrow("build", "--project", str(project)).returncode == 0
        out = wheelbarrow("image", "--project", str(project), "--image-tag", tag)
        assert out.returncode == 11, out.output[-4000:]
        failed = dict(re.findall(r"\[FAIL\] ([^:]+): (.*)", out.output))
        assert list(failed) == ["every extension imports and every ELF file's libraries are found"]
        assert "dlopen_app/_zstd" in failed[next(iter(failed))]
        assert "libzstd.so.1: cannot open shared object file" in failed[next(iter(failed))]
        assert "TIP: " in out.output
        assert "runtime-packages" in out.output.split("TIP: ", 1)[1]
        slim = wheelbarrow("image", "--project", str(project), "--image-tag", tag, "--runtime-style", "slim")
        assert slim.returncode == 0, slim.output[-4000:]  # the slim base has libzstd: only distroless lacks it
        listed = ("-C", "runtime-packages=libzstd1")
        assert wheelbarrow("build", "--project", str(project), *listed).returncode == 0
        fixed = wheelbarrow("image", "--project", str(project), "--image-tag", tag, *listed)
        assert fixed.returncode == 0, fixed.output[-4000:]
        assert "[PASS] runtime-packages are installed: libzstd1: yes" in fixed.output
        said = sh(["docker", "run", "--rm", tag, "python", "-c", "import dlopen_app; print(dlopen_app.version())"])
        assert int(said.output.strip()) >= 10000  # libzstd 1.x
        # A shell listed as a runtime package is copied whole, as every runtime package is: verify fails it.
        shelled = ("-C", "runtime-packages=libzstd1,dash")
        assert wheelbarrow("build", "--project", str(project), *shelled).returncode == 0
        out = wheelbarrow("image", "--project", str(project), "--image-tag", tag, *shelled)
        assert out.returncode == 11, out.output[-4000:]
        failed = dict(re.findall(r"\[FAIL\] ([^:]+): (.*)", out.output))
        assert list(failed) == ["no shell, package manager or coreutils (distroless)"]
        assert "dash=/usr/bin/dash" in failed[next(iter(failed))] or "dash=/bin/dash" in failed[next(iter(failed))]
        assert "sh=" in failed[next(iter(failed))]
        assert "runtime-packages" in out.output.split("TIP: ", 1)[1]
    finally:
        sh(["docker", "rmi", "-f", tag], check=False)
        shutil.rmtree(project / "wheelhouse", ignore_errors=True)


def test_an_executable_whose_symbol_no_library_defines_fails_verify(
    wheelbarrow: Runner, example_build: Build, distroless_image: str, tmp_path: Path
) -> None:
    """An executable in the venv (no Python in it) whose library lost a symbol since it was linked: every
    library is found, but glibc's loader, tracing with every symbol bound (never running it), names the
    symbol. Compiled in the builder with the network off; the image's own loader is asked."""
    manifest = json.loads((example_build.wheelhouse / "manifest.json").read_text(encoding="utf-8"))
    builder = next(w["builder_image_id"] for w in manifest["wheels"] if w.get("builder_image_id"))
    work = tmp_path / "exe"
    work.mkdir()
    (work / "a.c").write_text("int foo(void) { return 1; }\nint bar(void) { return 2; }\n")
    (work / "b.c").write_text("int bar(void) { return 2; }\n")
    (work / "m.c").write_text("int foo(void);\nint main(void) { return foo(); }\n")
    build = (
        "cd /w && gcc -shared -fPIC -Wl,-soname,libwbdemo.so -o libwbdemo.so a.c"
        " && gcc -o wbdemo m.c -L. -lwbdemo -Wl,-rpath,'$ORIGIN' && mkdir out && cp wbdemo out/"
        " && gcc -shared -fPIC -Wl,-soname,libwbdemo.so -o out/libwbdemo.so b.c && chmod -R a+rX out"
    )
    sh(["docker", "run", "--rm", "--network", "none", "-v", f"{work}:/w", "--entrypoint", "sh", builder, "-c", build])
    (work / "Dockerfile").write_text(f"FROM {distroless_image}\nCOPY out/ /opt/venv/bin/\n")
    broken = f"{distroless_image}-unbound"
    sh(["docker", "build", "-q", "-t", broken, str(work)], env={"DOCKER_BUILDKIT": "1"})
    try:
        out = wheelbarrow(
            "verify", "--project", str(example_build.project), "--runtime-style", "distroless", "--image-tag", broken
        )
        assert out.returncode == 11, out.output[-4000:]
        failed = dict(re.findall(r"\[FAIL\] ([^:]+): (.*)", out.output))
        assert list(failed) == ["every extension imports and every ELF file's libraries are found"]
        assert "/opt/venv/bin/wbdemo: missing symbol foo" in failed[next(iter(failed))]
        assert "libwbdemo" not in failed[next(iter(failed))]  # the library itself is found
    finally:
        sh(["docker", "rmi", "-f", broken], check=False)


def test_a_script_whose_interpreter_the_image_lacks_fails_verify(
    wheelbarrow: Runner, example_build: Build, distroless_image: str, tmp_path: Path
) -> None:
    """A wheel's #!/bin/sh script starts in the slim image and cannot in the distroless one (exec ...: no
    such file or directory): verify names it, and the #!/opt/venv/bin/python ones pass."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "shtool").write_text("#!/bin/sh\necho hello\n")
    (tmp_path / "out" / "shtool").chmod(0o755)
    (tmp_path / "Dockerfile").write_text(f"FROM {distroless_image}\nCOPY out/ /opt/venv/bin/\n")
    broken = f"{distroless_image}-shtool"
    sh(["docker", "build", "-q", "-t", broken, str(tmp_path)], env={"DOCKER_BUILDKIT": "1"})
    try:
        out = wheelbarrow("verify", "--project", str(example_build.project), "--image-tag", broken)
        assert out.returncode == 11, out.output[-4000:]
        failed = dict(re.findall(r"\[FAIL\] ([^:]+): (.*)", out.output))
        assert failed == {"every script's interpreter is there": "/opt/venv/bin/shtool: no /bin/sh"}
        assert "a distroless image has no /bin/sh" in out.output.split("TIP: ", 1)[1]
    finally:
        sh(["docker", "rmi", "-f", broken], check=False)


def test_publish_lists_the_distroless_images_debian_packages(
    wheelbarrow: Runner, example_build: Build, distroless_image: str, example_image: BuiltImage, tmp_path: Path
) -> None:
    """The image's label says its style, whatever runtime-style now says: publish with the default (slim)
    configuration still lists a distroless image's packages, verify still runs its 14 checks, and a slim
    image published with runtime-style = "distroless" is taken as slim (before: a docker cp error)."""
    dist = tmp_path / "dist"
    out = wheelbarrow(
        "publish", "--project", str(example_build.project),
        "--image-tag", distroless_image, "--dist-dir", str(dist), "--skip-image",
    )  # fmt: skip
    assert out.returncode == 0, out.output[-4000:]
    assert f"the image {distroless_image} is distroless (its io.wheelbarrow.runtime-style label)" in out.output
    (sbom,) = dist.glob("sbom-*.cdx.json")
    root = json.loads(sbom.read_text(encoding="utf-8"))["metadata"]["component"]
    purls = {c["name"]: c["purl"] for c in root["components"]}
    assert purls["libssl3"].startswith("pkg:deb/debian/libssl3@3.")
    assert purls["libc6"].startswith("pkg:deb/debian/libc6@2.36")
    assert "python3.11-minimal" in purls
    assert "dash" not in purls
    assert "perl-base" not in purls
    checked = wheelbarrow("verify", "--project", str(example_build.project), "--image-tag", distroless_image)
    assert checked.returncode == 0, checked.output[-4000:]
    assert "all 14 checks passed" in checked.output
    assert "[PASS] no shell, package manager or coreutils (distroless): none found" in checked.output

    slim = wheelbarrow(
        "publish", "--project", str(example_build.project), "--runtime-style", "distroless",
        "--image-tag", example_image.tag, "--dist-dir", str(tmp_path / "dist-slim"), "--skip-image",
    )  # fmt: skip
    assert slim.returncode == 0, slim.output[-4000:]
    assert f"the image {example_image.tag} is slim (its io.wheelbarrow.runtime-style label)" in slim.output
    (sbom,) = (tmp_path / "dist-slim").glob("sbom-*.cdx.json")
    assert "components" not in json.loads(sbom.read_text(encoding="utf-8"))["metadata"]["component"]


def closure_in_base(arguments: str, then: str) -> str:
    """Run wheelbarrow's closure (this checkout's) into /tmp/d in the real runtime base, with the network
    off, then the shell line ``then``; the last line it printed."""
    script = (
        "useradd --system app; mkdir -p /home/app /opt/venv; "
        f"PYTHONPATH=/src python3 -S -m wheelbarrow._closure /tmp/d 315532800 {arguments} > /dev/null && {then}"
    )
    argv = ["docker", "run", "--rm", "--network", "none", "-v", f"{REPO / 'src'}:/src:ro", "--entrypoint", "sh"]
    return sh([*argv, RUNTIME_BASE, "-c", script]).output.strip().splitlines()[-1]


def test_the_closure_brings_a_runtime_packages_data_dependencies_and_alternatives_links() -> None:
    """In the real runtime base: a runtime package's update-alternatives link (mawk's /usr/bin/awk) and
    the data of what it depends on (libpython3.11-stdlib's mime types, media-types'), never the base
    system (dash, perl-base, coreutils), and the ELF files of a dependency only through the ELF closure."""
    report = (
        'python3 -c \'import json, os; r = json.load(open("/tmp/d/usr/share/wheelbarrow/closure.json"));'
        ' print(json.dumps({"deps": r["runtime_package_dependencies"], "awk": os.readlink("/tmp/d/usr/bin/awk"),'
        ' "chosen": os.path.realpath("/tmp/d/etc/alternatives/awk"), "mime": os.path.isfile("/tmp/d/etc/mime.types"),'
        ' "files": sorted(os.path.join(r, n)[6:] for r, _, ns in os.walk("/tmp/d") for n in ns)}))\''
    )
    said = json.loads(closure_in_base('"" "mawk,libpython3.11-stdlib"', report))
    assert said["awk"] == "/etc/alternatives/awk"
    assert said["chosen"] == "/usr/bin/mawk"  # the link is absolute: read in the base, it leads to mawk
    assert said["mime"]
    assert {"media-types", "libpython3.11-minimal"} <= set(said["deps"])
    assert not {"dash", "perl-base", "coreutils", "bash", "debianutils"} & set(said["deps"])
    files = set(said["files"])
    assert "/usr/bin/mawk" in files
    for shell in ("/usr/bin/dash", "/bin/dash", "/usr/bin/sh", "/usr/bin/perl", "/usr/bin/ls", "/usr/bin/bash"):
        assert shell not in files, shell
    assert not any(f.startswith("/usr/lib/x86_64-linux-gnu/gconv/") and f.endswith(".so") for f in files)


@pytest.mark.parametrize(("extras", "works"), [("", False), ("gconv", True)])
def test_iconv_in_c_code_works_in_the_closure_only_with_gconv(extras: str, works: bool) -> None:
    """glibc's iconv loads its modules by name, which no ELF header says: without gconv = true, C code's
    iconv_open for ISO-8859-1 fails (EINVAL) in the closure, run as the image would (chroot); with it, works."""
    code = (
        "import ctypes; libc = ctypes.CDLL('libc.so.6', use_errno=True); libc.iconv_open.restype = ctypes.c_void_p; "
        "print('iconv', [libc.iconv_open(b'UTF-8', e) not in (None, 2**64 - 1) for e in (b'ISO-8859-1', b'CP1252')])"
    )
    said = closure_in_base(f'"" "" {extras}', f'chroot /tmp/d /usr/bin/python3 -c "{code}"')
    assert said == f"iconv {[works, works]}", said


@pytest.mark.parametrize(("exclude", "works"), [("", True), ("_curses*,curses", False)])
def test_curses_finds_its_terminals_unless_it_is_left_out(exclude: str, works: bool) -> None:
    """The terminfo database comes with curses (setupterm reads it), and stays out when curses is excluded."""
    found = "any(os.path.isfile(f + '/x/xterm') for f in ('/lib/terminfo', '/usr/share/terminfo'))"
    code = f"import os; print('terminfo', {found})"
    if works:
        code = "import curses; curses.setupterm('xterm', 1); " + code
    said = closure_in_base(f'"{exclude}" ""', f'chroot /tmp/d /usr/bin/python3 -c "{code}"')
    assert said == f"terminfo {works}", said
