"""A private index behind basic auth: a real pypiserver on a loopback port, with an htpasswd file.

It serves a pure wheel and an sdist (a C extension) built here, and nothing else (no fallback to
another index). The fixture project (``tests/projects/private-index/app``) locks both with a hashed
requirements.txt written here, and declares the index in one of four ways:

* ``poetry``: a supplemental Poetry source, the sdist's package pinned to it, credentials in
  ``POETRY_HTTP_BASIC_<NAME>_*``;
* ``uv``: a uv index (searched before pip's), credentials in ``UV_INDEX_<NAME>_*``;
* ``netrc``: an explicit uv index both packages are pinned to, credentials in a netrc file;
* ``pip``: no declaration, only ``PIP_EXTRA_INDEX_URL`` with user:password in it.

Each runs the real ``python -m wheelbarrow build`` with a cache of its own (so every file is really
fetched), and the password (and the Authorization header it makes) is looked for in the whole output,
every file under the wheelhouse, ``dist/`` and the cache (archives opened), and for the Poetry
variant in the runtime image (``docker save``, every layer), its history and its inspect output.
Wrong and missing credentials end with exit code 5, an ERROR naming the index without credentials
and a TIP about credentials.

pypiserver (with passlib, for the htpasswd file) must be installed in the test environment:
``pip install 'pypiserver[passlib]'``. Without it the tests fail, they do not skip.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tests.integration.conftest import PROJECTS, Outcome, Runner, copy_project, free_port, offline_container, sh

FIXTURE = PROJECTS / "private-index"
USER = "wb-ci"
WHEEL = "wbpriv_pure-1.0-py3-none-any.whl"
SDIST = "wbpriv_ext-1.0.tar.gz"
EPOCH = (1980, 1, 1, 0, 0, 0)
Variant = Literal["poetry", "uv", "netrc", "keyring", "pip"]
VARIANTS: tuple[Variant, ...] = ("poetry", "uv", "netrc", "keyring", "pip")
#: A keyring backend, loaded by the real keyring package (PYTHON_KEYRING_BACKEND) as any backend is: it
#: answers from keys.json beside it, as a desktop's keyring would answer from its store.
KEYRING_BACKEND = """\
import json
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.credentials import SimpleCredential


class FileBackend(KeyringBackend):
    priority = 1

    def _keys(self):
        return json.loads(Path(__file__).with_name("keys.json").read_text())

    def get_credential(self, service, username):
        found = self._keys().get(service)
        return SimpleCredential(*found) if found else None

    def get_password(self, service, username):
        found = self._keys().get(service)
        return found[1] if found and found[0] == username else None

    def set_password(self, service, username, password):
        raise NotImplementedError

    def delete_password(self, service, username):
        raise NotImplementedError
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pure_wheel(dest: Path) -> Path:
    """wbpriv_pure-1.0-py3-none-any.whl, written with zipfile: module, METADATA, WHEEL, RECORD."""
    files = {
        "wbpriv_pure/__init__.py": (FIXTURE / "pure" / "wbpriv_pure" / "__init__.py").read_bytes(),
        "wbpriv_pure-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: wbpriv-pure\nVersion: 1.0\n",
        "wbpriv_pure-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: wheelbarrow-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files["wbpriv_pure-1.0.dist-info/RECORD"] = (
        "\n".join([*record, "wbpriv_pure-1.0.dist-info/RECORD,,"]) + "\n"
    ).encode()
    path = dest / WHEEL
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, EPOCH), data)
    return path


def ext_sdist(dest: Path) -> Path:
    """wbpriv_ext-1.0.tar.gz, written with tarfile from the fixture's sdist folder and a PKG-INFO."""
    members = {p.name: p.read_bytes() for p in sorted((FIXTURE / "sdist").iterdir()) if p.is_file()}
    members["PKG-INFO"] = b"Metadata-Version: 2.1\nName: wbpriv-ext\nVersion: 1.0\n"
    path = dest / SDIST
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(f"wbpriv_ext-1.0/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 315532800
            archive.addfile(info, io.BytesIO(data))
    return path


@dataclass(frozen=True)
class PrivateIndex:
    url: str  # http://127.0.0.1:PORT/simple/, no credentials
    password: str
    files: dict[str, str]  # file name: sha256
    log: Path

    @property
    def secrets(self) -> tuple[bytes, ...]:
        """What must appear nowhere: the password, and the Authorization header's value made from it."""
        header = base64.b64encode(f"{USER}:{self.password}".encode())
        return self.password.encode(), header

    def with_userinfo(self, password: str) -> str:
        return self.url.replace("http://", f"http://{USER}:{password}@")


def _require_pypiserver() -> None:
    missing = [name for name in ("pypiserver", "passlib") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not installed in {sys.executable}: the private-index tests run a real "
            "pypiserver with an htpasswd file. Install the dev dependencies (pip install 'pypiserver[passlib]')."
        )


@pytest.fixture(scope="module")
def private_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateIndex]:
    """pypiserver on 127.0.0.1 serving the wheel and the sdist; every page and file needs basic auth."""
    _require_pypiserver()
    root = tmp_path_factory.mktemp("private-index")
    packages = root / "packages"
    packages.mkdir()
    files = {p.name: sha256(p.read_bytes()) for p in (pure_wheel(packages), ext_sdist(packages))}
    password = f"pw-{uuid.uuid4().hex}"
    htpasswd = root / "htpasswd"  # the {SHA} scheme of Apache's htpasswd, which passlib reads
    htpasswd.write_text(f"{USER}:{{SHA}}{base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()}\n")
    port, log = free_port(), root / "pypiserver.log"
    argv = [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port)]
    argv += ["-a", "download,list,update", "-P", str(htpasswd), "--disable-fallback", "--hash-algo", "sha256"]
    argv += ["--log-file", str(log), "--log-stream", "none", str(packages)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/simple/", server, log)
        yield PrivateIndex(f"http://127.0.0.1:{port}/simple/", password, files, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            pytest.fail(f"pypiserver exited {server.returncode}:\n{log.read_text() if log.exists() else ''}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError as err:
            if err.code == 401:  # up, and asking for credentials, as it must
                return
            pytest.fail(f"pypiserver answered {url} with HTTP {err.code}, not 401")
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"pypiserver did not answer on {url} within 30 s")
            time.sleep(0.2)
        else:
            pytest.fail(f"pypiserver served {url} without credentials")


def host_indexes() -> list[str]:
    """The indexes pip is configured with on this host, as wheelbarrow reads them."""
    script = "from wheelbarrow._index import read_settings as r; from wheelbarrow._log import Log as L; "
    script += "print(' '.join(r(L(sink=lambda _: None)).indexes))"
    return sh([sys.executable, "-c", script]).output.split()


def declare(project: Path, toml: str) -> None:
    path = project / "pyproject.toml"
    path.write_text(path.read_text(encoding="utf-8") + "\n" + toml, encoding="utf-8")


Given = Literal["right", "wrong", "none"]


def setup_variant(variant: Variant, index: PrivateIndex, root: Path, given: Given) -> tuple[Path, dict[str, str]]:
    """The fixture project declaring the index as ``variant`` says, and the environment of its run."""
    project = copy_project(FIXTURE / "app", root / "project")
    lock = "".join(
        f"{name}==1.0 \\\n    --hash=sha256:{index.files[file]}\n"
        for name, file in (("wbpriv-ext", SDIST), ("wbpriv-pure", WHEEL))
    )
    (project / "requirements.txt").write_text(lock, encoding="utf-8")
    password = {"right": index.password, "wrong": "not-" + index.password, "none": ""}[given]
    env = {"WHEELBARROW_CACHE_DIR": str(root / "cache"), "NETRC": str(root / "no-netrc")}
    if variant == "poetry":
        declare(
            project,
            '[tool.poetry.dependencies]\nwbpriv-ext = { version = "1.0", source = "corp-private" }\n\n'
            f'[[tool.poetry.source]]\nname = "corp-private"\nurl = "{index.url}"\npriority = "supplemental"\n',
        )
        if password:
            env |= {
                "POETRY_HTTP_BASIC_CORP_PRIVATE_USERNAME": USER,
                "POETRY_HTTP_BASIC_CORP_PRIVATE_PASSWORD": password,
            }
    elif variant == "uv":
        declare(project, f'[[tool.uv.index]]\nname = "corp.private-idx"\nurl = "{index.url}"\n')
        if password:
            env |= {"UV_INDEX_CORP_PRIVATE_IDX_USERNAME": USER, "UV_INDEX_CORP_PRIVATE_IDX_PASSWORD": password}
    elif variant == "netrc":
        declare(
            project,
            '[tool.uv.sources]\nwbpriv-ext = { index = "private" }\nwbpriv-pure = { index = "private" }\n\n'
            f'[[tool.uv.index]]\nname = "private"\nurl = "{index.url}"\nexplicit = true\n',
        )
        if password:
            netrc = root / "netrc"
            netrc.write_text(f"machine 127.0.0.1\n  login {USER}\n  password {password}\n", encoding="utf-8")
            netrc.chmod(0o600)
            env["NETRC"] = str(netrc)
    elif variant == "keyring":
        declare(project, f'[[tool.uv.index]]\nname = "corp.private-idx"\nurl = "{index.url}"\n')
        backend = root / "keyring-backend"
        backend.mkdir()
        (backend / "wb_test_keyring.py").write_text(KEYRING_BACKEND, encoding="utf-8")
        keys = {index.url: [USER, password]} if password else {}
        (backend / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
        env |= {"PYTHON_KEYRING_BACKEND": "wb_test_keyring.FileBackend", "PYTHONPATH": str(backend)}
    else:
        private = index.with_userinfo(password) if password else index.url
        env["PIP_EXTRA_INDEX_URL"] = " ".join([*host_indexes(), private])
    return project, env


def _found_in(data: bytes, secrets: tuple[bytes, ...], depth: int = 0) -> bool:
    """Whether any secret is in ``data``, or in what it holds once opened (gzip, tar, zip), three levels deep."""
    if any(secret in data for secret in secrets):
        return True
    if depth > 2:
        return False
    inner: list[bytes] = []
    with contextlib.suppress(OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError):
        if data[:2] == b"\x1f\x8b":
            inner.append(gzip.decompress(data))
        elif data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                inner += [archive.read(name) for name in archive.namelist()]
        elif len(data) > 512 and data[257:262] == b"ustar":
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:  # its files are in ``data`` as they are,
                for member in archive.getmembers():  # but not what its compressed files hold
                    stream = archive.extractfile(member) if member.isfile() else None
                    blob = stream.read() if stream is not None else b""
                    if blob[:2] == b"\x1f\x8b" or blob[:4] == b"PK\x03\x04":
                        inner.append(blob)
    return any(_found_in(blob, secrets, depth + 1) for blob in inner)


def leaks(secrets: tuple[bytes, ...], *roots: Path) -> list[str]:
    """Every file under ``roots`` (archives opened) that holds a secret."""
    paths = [path for root in roots for path in (sorted(root.rglob("*")) if root.is_dir() else [root])]
    return [str(p) for p in paths if p.is_file() and not p.is_symlink() and _found_in(p.read_bytes(), secrets)]


def image_leaks(secrets: tuple[bytes, ...], image: str) -> list[str]:
    """What of ``docker save IMAGE`` (every layer and config, opened), its history and inspect holds a secret."""
    found = []
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as saving:
        assert saving.stdout is not None
        with tarfile.open(fileobj=saving.stdout, mode="r|") as archive:
            for member in archive:
                stream = archive.extractfile(member) if member.isfile() else None
                if stream is not None and _found_in(stream.read(), secrets):
                    found.append(f"{image}: {member.name}")
    assert saving.returncode == 0
    for what in (["history", "--no-trunc", image], ["image", "inspect", image]):
        text = sh(["docker", *what]).output.encode()
        found += [f"docker {' '.join(what)}"] if any(s in text for s in secrets) else []
    return found


def build(wheelbarrow: Runner, project: Path, env: dict[str, str]) -> Outcome:
    return wheelbarrow("build", "--project", str(project), env=env)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_private_index_with_credentials(
    wheelbarrow: Runner, private_index: PrivateIndex, tmp_path: Path, variant: Variant
) -> None:
    project, env = setup_variant(variant, private_index, tmp_path, "right")
    out = build(wheelbarrow, project, env)
    assert out.returncode == 0, out.output[-5000:]
    # both files came from the private index, now, with credentials it accepted
    for file in (WHEEL, SDIST):
        assert f"downloading {file} from {private_index.url.removesuffix('simple/')}packages/{file}" in out.output
    if variant == "poetry":
        assert f"wbpriv-ext only from: {private_index.url} (Poetry source 'corp-private')" in out.output
    if variant == "netrc":
        assert f"wbpriv-pure only from: {private_index.url} (uv index 'private')" in out.output
    manifest = (project / "wheelhouse" / "manifest.json").read_text(encoding="utf-8")
    assert '"origin": "built"' in manifest
    assert private_index.files[WHEEL] in manifest
    # and the password is nowhere
    assert not any(s.decode() in out.output for s in private_index.secrets)
    assert leaks(private_index.secrets, project / "wheelhouse", tmp_path / "cache") == []
    memo = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and "memo" in p.parts]
    assert memo, "the run remembered nothing in the cache: the memo check above checked nothing"
    if variant == "poetry":
        image_and_publish(wheelbarrow, private_index, project, env, tmp_path)


def image_and_publish(
    wheelbarrow: Runner, index: PrivateIndex, project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    tag = f"wheelbarrow-test-private-{os.getpid()}:1.0"
    env = {**env, "WHEELBARROW_IMAGE_TAG": tag}
    try:
        image = wheelbarrow("image", "--project", str(project), env=env)
        assert image.returncode == 0, image.output[-5000:]
        published = wheelbarrow("publish", "--project", str(project), "--skip-image", env=env)
        assert published.returncode == 0, published.output[-5000:]
        dist = project / "dist"
        assert sorted(p.name for p in dist.glob("sbom-*.cdx.json")) == ["sbom-wb-private-app-1.0.cdx.json"]
        assert list(dist.glob("wheelhouse-*.tar.gz"))
        output = image.output + published.output
        assert not any(s.decode() in output for s in index.secrets)
        assert leaks(index.secrets, dist) == []
        assert image_leaks(index.secrets, tag) == []
        builder = sh(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/wheelbarrow/builder"]
        ).output
        for ref in [
            line for line in builder.split() if line.startswith("localhost/wheelbarrow/builder:wb-private-app-")
        ]:
            assert image_leaks(index.secrets, ref) == []
        # the image works: both packages import, the C one computes
        with offline_container("private", tag) as name:
            probe = "/opt/venv/bin/python -c 'import private_app; print(private_app.ANSWER)'"
            assert sh(["docker", "exec", name, "sh", "-c", probe]).output.strip() == "('private', 7)"
    finally:
        sh(["docker", "rmi", "-f", tag], check=False)


@pytest.mark.parametrize("given", ["wrong", "none"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_wrong_or_missing_credentials_name_the_index_and_say_where_they_go(
    wheelbarrow: Runner, private_index: PrivateIndex, tmp_path: Path, variant: Variant, given: Given
) -> None:
    project, env = setup_variant(variant, private_index, tmp_path, given)
    out = build(wheelbarrow, project, env)
    assert out.returncode == 5, out.output[-4000:]
    error = next(line for line in out.output.splitlines() if line.startswith("ERROR: "))
    tip = next(line for line in out.output.splitlines() if line.startswith("TIP: "))
    code, said = (
        ("403 Forbidden", "refused the credentials given") if given == "wrong" else ("401", "needs credentials")
    )
    assert f"answered HTTP {code}" in error
    assert f"the index {private_index.url}" in error
    assert error.endswith(said)
    uv_index = "(uv index 'corp.private-idx')"
    label = {"poetry": "(Poetry source 'corp-private')", "uv": uv_index, "keyring": uv_index}.get(variant, "")
    assert label in error
    assert "netrc" in tip
    if variant == "poetry":
        assert "POETRY_HTTP_BASIC_CORP_PRIVATE_USERNAME and POETRY_HTTP_BASIC_CORP_PRIVATE_PASSWORD" in tip
    if variant == "uv":
        assert "UV_INDEX_CORP_PRIVATE_IDX_USERNAME and UV_INDEX_CORP_PRIVATE_IDX_PASSWORD" in tip
    assert not any(s.decode() in out.output for s in private_index.secrets)  # the wrong one holds the right one
    assert not (project / "wheelhouse").exists()


@pytest.fixture(scope="module", autouse=True)
def remove_builder_images() -> Iterator[None]:
    """The builder images these builds made (their project is this module's own)."""
    yield
    listed = sh(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/wheelbarrow/builder"], check=False
    )
    for ref in listed.output.split():
        if ref.startswith("localhost/wheelbarrow/builder:wb-private-app-"):
            sh(["docker", "rmi", "-f", ref], check=False)
