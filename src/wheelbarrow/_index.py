"""A client of the index's simple API (PEP 503 HTML, PEP 691 JSON): it reads pages and downloads files, nothing else.

It honours pip's configuration as pip reads it: ``pip config list`` (the
config files), then the ``PIP_*`` environment variables, which win:
index-url, extra-index-url, no-index, cert, client-cert, trusted-host, proxy,
timeout, retries. The indexes a project declares itself (Poetry sources, uv
indexes) and the credentials of every index come from
:mod:`wheelbarrow._sources`. Credentials go, as HTTP basic auth, to the index's
own host only (its pages and the files it links there), never on to a
redirect's host; no request holds them in its URL, so no urllib error can
quote them, and URLs are logged and reported without them.
"""

from __future__ import annotations

import ast
import hashlib
import http.client
import importlib
import json
import os
import ssl
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import canonicalize_name

from . import _shapes
from ._cache import writing
from ._cmd import CommandFailed, run
from ._log import Log, scrub
from ._sources import Credentials, Index, redact
from .errors import (
    FetchError,
    HashMismatchError,
    IndexAuthError,
    IndexTLSError,
    IndexUnreachableError,
)

__all__ = [
    "ACCEPT",
    "JSON_TYPE",
    "RELOCK",
    "Client",
    "Index",
    "IndexFile",
    "Settings",
    "Stopped",
    "parse_page",
    "read_settings",
    "redact",
    "scrub",
]

T = TypeVar("T")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, text/html;q=0.1"
NETWORK_ERRORS = (OSError, http.client.HTTPException)
RELOCK = "The lock or the index changed: re-lock the project and run again."


@dataclass(frozen=True)
class Settings:
    """What wheelbarrow takes from pip's configuration."""

    indexes: tuple[str, ...]
    cert: str = ""
    client_cert: str = ""
    trusted_hosts: frozenset[str] = frozenset()
    proxy: str = ""
    timeout: float = 60.0
    retries: int = 2
    netrc_file: str = ""

    @classmethod
    def from_pip(cls, config_list: str, environ: Mapping[str, str], default_index: str) -> Settings:
        """From ``pip config list``'s output and the environment, where ``PIP_*`` wins as in pip."""
        files: dict[str, str] = {}
        for section in ("global.", "download."):  # [download] overrides [global] for pip download
            for key, sep, raw in (line.strip().partition("=") for line in config_list.splitlines()):
                if sep and key.startswith(section):
                    files[key.removeprefix(section)] = _literal(raw)

        def get(*names: str) -> str:
            for name in names:
                if (value := environ.get("PIP_" + name.upper().replace("-", "_"))) is not None:
                    return value
            return next((files[n] for n in names if n in files), "")

        indexes = [get("index-url") or default_index, *get("extra-index-url").split()]
        no_index = get("no-index").strip().lower() in {"1", "true", "yes", "on"}
        home = environ.get("HOME") or str(Path.home())
        return cls(
            indexes=() if no_index else tuple(dict.fromkeys(indexes)),
            cert=get("cert") or environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE") or "",
            client_cert=get("client-cert"),
            trusted_hosts=frozenset(get("trusted-host").split()),
            proxy=get("proxy"),
            timeout=_number(get("timeout", "default-timeout"), 60.0),
            retries=int(_number(get("retries"), 2)),
            netrc_file=environ.get("NETRC") or str(Path(home) / ".netrc"),
        )


def _literal(raw: str) -> str:
    try:
        return str(ast.literal_eval(raw))  # pip config list prints repr()s
    except (ValueError, SyntaxError):
        return raw.strip("'\"")


def _number(value: str, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def read_settings(log: Log) -> Settings:
    """pip's configuration, read once (``pip config list`` runs no index code)."""
    try:
        default_index = str(importlib.import_module("pip._internal.models.index").PyPI.simple_url)
        listed = run([sys.executable, "-m", "pip", "--disable-pip-version-check", "config", "list"], log).output
    except (ImportError, AttributeError, CommandFailed) as err:
        msg = f"could not read pip's configuration with {sys.executable} -m pip config list"
        raise FetchError(msg, tip="Check that pip works in this environment: python -m pip config list.") from err
    return Settings.from_pip(listed, os.environ, default_index)


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # absolute, without its fragment
    sha256: str | None
    yanked: str | None = None  # None: not yanked; else the reason, maybe ""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.base, self.anchors = "", list[dict[str, str | None]]()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and dict(attrs).get("href"):
            self.anchors.append(dict(attrs))
        elif tag == "base" and not self.base:
            self.base = dict(attrs).get("href") or ""


def _file(href: str, base: str, filename: str, sha256: str | None, yanked: str | None) -> IndexFile:
    url, _, fragment = urljoin(base, href).partition("#")
    algorithm, _, value = fragment.partition("=")
    name = filename or unquote(urlsplit(url).path.rpartition("/")[2])
    sha = sha256 or (value if algorithm == "sha256" else None)
    return IndexFile(name, url, sha.lower() if sha else None, yanked)


def parse_page(body: bytes, content_type: str, url: str) -> list[IndexFile]:
    """The files a project page lists, with absolute URLs (``url``, the page's own, resolves relative links)."""
    if content_type != JSON_TYPE:
        links = _Links()
        links.feed(body.decode("utf-8", "replace"))
        base = urljoin(url, links.base)
        yanked = [(a["data-yanked"] or "") if "data-yanked" in a else None for a in links.anchors]
        return [_file(a["href"] or "", base, "", None, y) for a, y in zip(links.anchors, yanked, strict=True)]
    try:
        return [
            _file(
                str(e["url"]),
                url,
                str(e["filename"]),
                (e.get("hashes") or {}).get("sha256"),
                None if not e.get("yanked") else "" if e["yanked"] is True else str(e["yanked"]),
            )
            for e in json.loads(body)["files"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        msg = f"{redact(url)} is not a valid PEP 691 project page: {err!r}"
        raise FetchError(msg, tip="Check pip's index-url and extra-index-url (pip config list).") from err


class Stopped(Exception):  # noqa: N818 - not an error: the run gave up on this download
    """Another download failed or the run was interrupted, so this one gave up."""


def _tls(err: BaseException) -> bool:
    return isinstance(err, ssl.SSLError) or isinstance(getattr(err, "reason", None), ssl.SSLError)


class Client:
    """Reads project pages and downloads files for one run; safe to share between threads."""

    def __init__(self, settings: Settings, log: Log, indexes: Sequence[Index] = ()) -> None:
        """``indexes``: those the project declares, whose credentials count as pip's indexes' do."""
        self.settings, self.log = settings, log
        #: Every index this client knows: the project's, then pip's (in pip's order).
        self.indexes = tuple(dict.fromkeys((*indexes, *(Index(url) for url in settings.indexes))))
        self.credentials = Credentials(self.indexes, settings.netrc_file, log)
        self.stopping = threading.Event()
        self._openers = {verify: self._opener(verify) for verify in (True, False)}

    def _opener(self, verify: bool) -> urllib.request.OpenerDirector:
        cert = Path(self.settings.cert) if self.settings.cert else None
        try:
            if cert is not None and not cert.exists():
                raise FileNotFoundError(f"no such file: {cert}")
            context = ssl.create_default_context(
                cafile=cert if cert and cert.is_file() else None, capath=cert if cert and cert.is_dir() else None
            )
            if self.settings.client_cert:
                context.load_cert_chain(self.settings.client_cert)
        except (OSError, ssl.SSLError) as err:
            msg = f"pip's CA bundle or client certificate cannot be used: {err}"
            tip = "Fix pip's 'cert' (PIP_CERT) or 'client-cert' (PIP_CLIENT_CERT) setting: see pip config list."
            raise IndexTLSError(msg, tip=tip) from err
        if not verify:  # pip's trusted-host
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        proxies = {"http": self.settings.proxy, "https": self.settings.proxy} if self.settings.proxy else None
        handlers = urllib.request.ProxyHandler(proxies), urllib.request.HTTPSHandler(context=context)
        return urllib.request.build_opener(*handlers)

    def authorization(self, url: str) -> str | None:
        """The Authorization header a request for ``url`` carries, or None."""
        return self.credentials.header(url)

    def _open(self, url: str, accept: str = "") -> tuple[IO[bytes], str, str]:
        """(stream, content type, the URL it came from); FileNotFoundError for a missing local page."""
        parts = urlsplit(url)
        if parts.scheme == "file":
            path = Path(urllib.request.url2pathname(parts.path))
            path = path / "index.html" if path.is_dir() else path
            return path.open("rb"), (JSON_TYPE if path.suffix == ".json" else "text/html"), url
        if parts.scheme not in {"http", "https"}:
            raise urllib.error.URLError(f"unsupported URL scheme {parts.scheme!r}")
        # The request never holds user:password in its URL, so no urllib error can quote them.
        request = urllib.request.Request(redact(url), headers={"Accept": accept} if accept else {})  # noqa: S310
        if (auth := self.credentials.header(url)) is not None:
            request.add_unredirected_header("Authorization", auth)  # never sent on to a redirect's host
        trusted = {parts.hostname, parts.netloc} & self.settings.trusted_hosts
        opener = self._openers[not trusted]
        try:
            response = opener.open(request, timeout=self.settings.timeout)
        except urllib.error.HTTPError as err:
            if err.code != 401 or auth is not None or (auth := self.credentials.ask_keyring(url)) is None:
                raise
            err.close()
            request.add_unredirected_header("Authorization", auth)
            response = opener.open(request, timeout=self.settings.timeout)
        return response, response.headers.get_content_type(), response.geturl()

    def _request(self, action: Callable[[], T], url: str, index: Index | None = None) -> T | None:
        """``action()``, tried again (pip's ``retries``, default 2) on a transient error; None on a 404.

        Any other failure becomes the :class:`FetchError` that says what to do.
        """
        for attempt in range(self.settings.retries + 1):
            last = attempt == self.settings.retries
            try:
                return action()
            except FileNotFoundError:
                return None
            except urllib.error.HTTPError as err:
                err.close()
                if err.code in {404, 410}:
                    return None
                if err.code not in {429, 500, 502, 503, 504} or last:
                    raise self._error(err, url, index) from err
            except NETWORK_ERRORS as err:
                if last or _tls(err):
                    raise self._error(err, url, index) from err
            if self.stopping.wait(0.5 * 2**attempt):
                raise Stopped
        raise AssertionError  # the last attempt returned or raised

    def _error(self, err: Exception, url: str, index: Index | None = None) -> FetchError:
        shown, reason = redact(url), scrub(str(getattr(err, "reason", None) or err))
        if isinstance(err, urllib.error.HTTPError) and err.code in {401, 403}:
            index = index or next(iter(self.credentials.owners(url)), None)
            given = self.credentials.header(url) is not None
            named = f"the index {index.shown}" if index else "the index"
            msg = f"{shown} answered HTTP {err.code} {reason}: {named} "
            msg += "refused the credentials given" if given else "needs credentials"
            where = f"in {index.hint}, " if index and index.hint else ""
            tip = f"{'Check' if given else 'Give'} the index's user and password {where}in ~/.netrc (or the file "
            tip += "NETRC names), or as user:password in the index URL (pip's index-url or extra-index-url, "
            tip += "PIP_INDEX_URL); keyring is asked too when its package is installed with wheelbarrow."
            return IndexAuthError(msg, tip=tip)
        if isinstance(err, urllib.error.HTTPError):
            msg = f"{shown} answered HTTP {err.code} {reason}"
            return FetchError(msg, tip="Check pip's index settings (pip config list) and run again.")
        if _tls(err):
            msg = f"TLS verification of {shown} failed: {reason}"
            tip = "Point pip's 'cert' setting (PIP_CERT, or pip config set global.cert FILE) at the index's CA bundle."
            return IndexTLSError(msg, tip=tip)
        where = f"{index.shown} ({shown}: {reason})" if index else f"{shown} ({reason})"
        msg = f"the index cannot be reached from this host: {where}"
        tip = "Check the network, proxy and index settings (pip config list). A run whose downloads are all in "
        return IndexUnreachableError(msg, tip=tip + "wheelbarrow's cache needs no index.")

    def project_files(self, index: Index, name: str) -> list[IndexFile] | None:
        """The files of project ``name`` on ``index``; None when the index does not have it."""
        url = f"{index.url.rstrip('/')}/{canonicalize_name(name)}/"

        def read() -> list[IndexFile]:
            stream, content_type, final = self._open(url, ACCEPT)
            with stream:
                return parse_page(stream.read(), content_type, final)

        return self._request(read, url, index)

    def download(self, file: IndexFile, hashes: Sequence[str], label: str, dest: Path) -> tuple[Path, str]:
        """Stream ``file`` into ``dest`` while hashing it; refuse and delete it unless its sha256 is in ``hashes``."""
        tip = "The index misbehaves: check pip's index settings (pip config list)."
        _shapes.filename(file.filename, f"the index's file for {label}", FetchError, tip=tip)
        self.log.info(f"downloading {file.filename} from {redact(file.url)}")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / file.filename

        def fetch() -> str:
            digest = hashlib.sha256()
            stream, _, _ = self._open(file.url)
            with stream, target.open("wb") as out:
                for block in iter(lambda: stream.read(1 << 16), b""):
                    if self.stopping.is_set():
                        raise Stopped
                    digest.update(block)
                    with writing(target, "the cache's scratch area"):
                        out.write(block)
            return digest.hexdigest()

        sha = self._request(fetch, file.url)
        if sha is None:
            msg = f"{redact(file.url)} is listed by the index but answers 404 ({label})"
            raise IndexUnreachableError(msg, tip="The index changed or misbehaves: run again later, or re-lock.")
        if sha not in hashes:
            target.unlink(missing_ok=True)
            expected = " or ".join(hashes)
            msg = "the index served a file whose sha256 is not the locked one: "
            raise HashMismatchError(
                f"{msg}{label} ({file.filename}): expected sha256 {expected}, got {sha}", tip=RELOCK
            )
        return target, sha
