"""Where packages are looked up: the indexes a project declares in its pyproject.toml, and their credentials.

The declarations are read as data: no tool runs. Honoured:

* Poetry 2: ``[[tool.poetry.source]]`` tables with ``name``, ``url`` and ``priority``: ``primary`` (the
  default), ``supplemental`` or ``explicit``. Primary sources are searched in the order written, then
  supplemental ones; PyPI is searched first when no source is primary, and a source named ``PyPI``
  (without a url) puts it at that source's priority. ``source = "NAME"`` on a dependency in
  ``[tool.poetry.dependencies]`` or ``[tool.poetry.group.<g>.dependencies]`` (a table, or a list of
  tables whose ``markers`` are evaluated for the target) makes that source the only one searched for
  the package, whatever its priority; explicit sources are searched for those packages only.
  Credentials: ``POETRY_HTTP_BASIC_<NAME>_USERNAME`` and ``_PASSWORD``, NAME upper-cased with ``-``
  made ``_``, as Poetry spells them.
* uv: ``[[tool.uv.index]]`` entries with ``name``, ``url``, ``default`` and ``explicit``. Indexes are
  searched in the order written and the default one last: PyPI, unless an entry says ``default =
  true``; explicit ones only for the packages pinned to them. ``[tool.uv.sources]`` ``pkg = { index =
  "NAME" }`` (or a list of such tables, whose ``marker`` is evaluated for the target) makes that index
  the only one searched for the package. Credentials: ``UV_INDEX_<NAME>_USERNAME`` and ``_PASSWORD``,
  NAME upper-cased with every character but ASCII letters and digits made ``_``, as uv spells them.

PyPI, wherever a tool means it, is pip's configuration on this host: its index-url and
extra-index-url (none with no-index). With a ``poetry.lock`` only Poetry's declarations count, with a
``uv.lock`` only uv's; with a pylock or requirements lock both, Poetry's first. A project that declares
no index is looked up in pip's indexes alone.

Not read: Poetry's own configuration (``poetry config``: ``http-basic.*`` in auth.toml or its keyring
service ``poetry-repository-<name>``, ``POETRY_REPOSITORIES_*``, ``certificates.*``), single-page
(``.html``) Poetry sources and uv ``format = "flat"`` indexes (warned about, never searched; a package
pinned to one is a configuration error), a constraint's ``python``/``platform`` keys and a uv
source's ``extra``/``group`` conditions (the pin counts whatever they say), ``[tool.uv]``
``index-url``/``extra-index-url``/``find-links``/``index-strategy``, uv's per-index ``authenticate``,
``ignore-error-codes`` and ``cache-control``, ``uv.toml`` and ``UV_INDEX``/``UV_DEFAULT_INDEX``, and
relative-path index URLs. Build requirements are resolved by pip with pip's configuration alone.

Credentials for a URL (:class:`Credentials`), the first found wins: its own user:password; those of
the index it belongs to (the tool's environment variables, then the index URL's user:password);
netrc's (``NETRC``, else ``~/.netrc``) for its host; and, after a 401 to a request without any,
keyring's, when the ``keyring`` package is importable in this interpreter, asked as pip asks it
(``get_credential(index URL, user)``, then ``get_credential(host, user)``). They are shown nowhere:
every URL is shown through :func:`redact`, every exception's text through :func:`scrub`.
"""

from __future__ import annotations

import base64
import importlib
import netrc
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlsplit, urlunsplit

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.utils import canonicalize_name

from ._log import Log, scrub
from ._project import read_pyproject
from .errors import ConfigError


def redact(url: str) -> str:
    """``url`` without its user:password."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urllib can split (a bad IPv6 host): show none of what may be its userinfo
        return scrub(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) if "@" in parts.netloc else url


@dataclass(frozen=True)
class Index:
    """One index to look packages up in: pip's, or one a project declares (a Poetry source, a uv index)."""

    url: str  # as configured: it may hold user:password, so it is shown only through ``shown``
    label: str = ""  # what declared it, e.g. "Poetry source 'corp'"; "" for pip's
    username: str | None = field(default=None, repr=False)  # from the environment of the tool that declared it
    password: str | None = field(default=None, repr=False)
    hint: str = ""  # where its credentials go, for the tip of a 401, e.g. "POETRY_HTTP_BASIC_CORP_USERNAME and ..."

    @property
    def shown(self) -> str:
        return f"{redact(self.url)} ({self.label})" if self.label else redact(self.url)

    @property
    def base(self) -> str:
        """The URL without user:password, without a trailing slash."""
        return redact(self.url).rstrip("/")


UserPassword = tuple[str, str]


def _host(url: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:  # a port that is not a number: often a password with an unencoded "/"
        msg = f"the index URL {scrub(url)} cannot be read: {scrub(str(err))}"
        tip = "Percent-encode reserved characters of a user name or password in an index URL ('/' is %2F)."
        raise ConfigError(msg, tip=tip) from err
    return parts.hostname, port


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _keyring_module(log: Log) -> ModuleType | None:
    """The ``keyring`` package if it is importable in this interpreter (wheelbarrow does not depend on it)."""
    try:
        return importlib.import_module("keyring")
    except ImportError:
        return None
    except Exception as err:  # noqa: BLE001 - a broken keyring install must not break a fetch
        log.warning(f"keyring is installed but cannot be imported ({type(err).__name__}): not asking it")
        return None


class Credentials:
    """Basic auth for the URLs of the known ``indexes``; safe to share between threads."""

    def __init__(self, indexes: Sequence[Index], netrc_file: str, log: Log) -> None:
        self.indexes, self.log = tuple(indexes), log
        self._netrc: netrc.netrc | None = None
        if Path(netrc_file).is_file():
            try:
                self._netrc = netrc.netrc(netrc_file)
            except netrc.NetrcParseError as err:  # its text may quote a token of the file: a password
                log.warning(f"ignoring {netrc_file}: it cannot be parsed (line {err.lineno})")
            except OSError as err:
                log.warning(f"ignoring {netrc_file}: {err.strerror or type(err).__name__}")
            except UnicodeDecodeError:
                log.warning(f"ignoring {netrc_file}: it is not text in this system's encoding")
        self._keyring_lock = threading.Lock()
        self._keyring_answers: dict[str, UserPassword | None] = {}

    def owners(self, url: str) -> list[Index]:
        """The known indexes on ``url``'s host and port: those whose URL starts it (longest first), then the rest."""
        same = [index for index in self.indexes if _host(index.url) == _host(url)]
        shown = redact(url)
        under = [i for i in same if shown == i.base or shown.startswith(i.base + "/")]
        under.sort(key=lambda index: -len(index.base))
        return [*under, *(index for index in same if index not in under)]

    def lookup(self, url: str) -> UserPassword | None:
        """(user, password) for ``url``: its own, its index's (environment, then URL), netrc's, keyring's once asked."""
        parts = urlsplit(url)
        if parts.username is not None:
            return unquote(parts.username), unquote(parts.password or "")
        owners = self.owners(url)
        for index in owners:
            if index.password is not None:
                return index.username or "", index.password
            known = urlsplit(index.url)
            if known.username is not None:
                return unquote(known.username), unquote(known.password or "")
        found = self._netrc.authenticators(parts.hostname) if self._netrc and parts.hostname else None
        if found:
            return found[0] or found[1] or "", found[2] or ""
        with self._keyring_lock:
            answers = [self._keyring_answers.get(key) for key in self._keyring_keys(url, owners)]
        return next((answer for answer in answers if answer is not None), None)

    def header(self, url: str) -> str | None:
        """The Authorization header for ``url`` (HTTP basic auth), or None."""
        found = self.lookup(url)
        return _basic(*found) if found else None

    @staticmethod
    def _keyring_keys(url: str, owners: Sequence[Index]) -> list[str]:
        """What pip asks keyring for: the index's URL (without user:password), then the host."""
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return [*([owners[0].base + "/"] if owners else []), *([host] if host else [])]

    def ask_keyring(self, url: str) -> str | None:
        """After a 401 to a request without credentials: keyring's, if its package is importable here, or None."""
        owners = self.owners(url)
        username = next((name for i in owners if (name := i.username or unquote(urlsplit(i.url).username or ""))), None)
        with self._keyring_lock:
            for key in self._keyring_keys(url, owners):
                if key not in self._keyring_answers:
                    self._keyring_answers[key] = self._ask_keyring(key, username)
                if (answer := self._keyring_answers[key]) is not None:
                    return _basic(*answer)
        return None

    def _ask_keyring(self, key: str, username: str | None) -> UserPassword | None:
        module = _keyring_module(self.log)
        if module is None:
            return None
        try:
            credential = module.get_credential(key, username)
        except Exception as err:  # noqa: BLE001 - a keyring backend may raise anything; like pip, go on without it
            self.log.warning(f"keyring could not be asked for {scrub(key)}'s credentials: {type(err).__name__}")
            return None
        password = getattr(credential, "password", None)
        if credential is None or password is None:
            return None
        return str(getattr(credential, "username", None) or ""), str(password)


POETRY_PRIORITIES = ("primary", "supplemental", "explicit")
SCHEMES = ("http", "https", "file")
TIP = "Fix the package sources in pyproject.toml (the README's Private indexes says what is read)."

#: One declaration of a package's index: the indexes it names, or None for "the indexes every package is searched in".
Pin = tuple[Index, ...] | None


@dataclass(frozen=True)
class Sources:
    """Where packages are looked up: ``searched`` for any package, ``pins`` for the packages that name an index."""

    searched: tuple[Index, ...]
    pins: Mapping[str, tuple[Index, ...]] = field(default_factory=dict)  # canonical name: its only indexes
    declared: tuple[Index, ...] = ()  # every index the project declares (their credentials count)

    def for_project(self, name: str) -> tuple[Index, ...]:
        return self.pins.get(canonicalize_name(name), self.searched)

    def describe(self) -> list[str]:
        """What the log says (URLs without credentials)."""
        lines = ["indexes searched: " + (", ".join(i.shown for i in self.searched) or "none (pip's no-index)")]
        lines += [f"{name} only from: {', '.join(i.shown for i in only)}" for name, only in sorted(self.pins.items())]
        return lines


@dataclass
class _Declarations:
    """What one tool's tables say."""

    searched: list[Index] = field(default_factory=list)
    named: dict[str, tuple[Index, ...]] = field(default_factory=dict)  # the tool's name for an index: its indexes
    unsupported: dict[str, str] = field(default_factory=dict)  # name: why it is not searched
    pins: dict[str, list[Pin]] = field(default_factory=dict)


def read_sources(
    project_dir: Path,
    pip_indexes: Sequence[str],
    environ: Mapping[str, str],
    target: Mapping[str, str],
    log: Log,
    *,
    lock: Path | None = None,
) -> Sources:
    """The project's declarations mapped onto a search order; ``target`` is the marker environment of the target."""
    pypi = tuple(Index(url) for url in pip_indexes)
    if not (project_dir / "pyproject.toml").is_file():
        return Sources(pypi)
    tool = read_pyproject(project_dir).get("tool")
    tool = tool if isinstance(tool, dict) else {}
    found: list[_Declarations] = []
    lock_name = lock.name if lock else ""
    if lock_name != "uv.lock" and (poetry := _table(tool.get("poetry"), "[tool.poetry]")).get("source"):
        found.append(_poetry(poetry, pypi, environ, target, log))
    if lock_name != "poetry.lock" and (uv := _table(tool.get("uv"), "[tool.uv]")).get("index"):
        found.append(_uv(uv, pypi, environ, target, log))
    if not found:
        return Sources(pypi)
    searched = tuple(dict.fromkeys(i for d in found for i in d.searched))
    pins: dict[str, tuple[Index, ...]] = {}
    for name in dict.fromkeys(n for d in found for n in d.pins):
        pinned = [pin for d in found for pin in d.pins.get(name, [])]
        if any(pin is not None for pin in pinned):
            pins[name] = tuple(dict.fromkeys(i for pin in pinned for i in (searched if pin is None else pin)))
    declared = tuple(dict.fromkeys(i for d in found for indexes in d.named.values() for i in indexes))
    return Sources(searched, pins, declared)


def _table(value: object, where: str) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"pyproject.toml: {where} must be a table", tip=TIP)
    return value


def _tables(value: object, where: str) -> list[dict[str, object]]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in items):
        raise ConfigError(f"pyproject.toml: {where} must be a table or an array of tables", tip=TIP)
    return [item for item in items if isinstance(item, dict)]


def _url(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} has no url", tip=TIP)
    try:
        scheme = urlsplit(value).scheme
    except ValueError:
        scheme = ""
    if scheme not in SCHEMES:
        msg = f"{where}: url {redact(value)!r} is not an http, https or file URL"
        raise ConfigError(msg, tip=TIP + " Relative paths are not supported: use a file:// URL.")
    return value


def _with_credentials(url: str, label: str, environ: Mapping[str, str], prefix: str) -> Index:
    """The index, with the user and password the tool's environment variables ``<prefix>_USERNAME/_PASSWORD`` give."""
    username, password = environ.get(f"{prefix}_USERNAME"), environ.get(f"{prefix}_PASSWORD")
    return Index(url, label, username, password, hint=f"{prefix}_USERNAME and {prefix}_PASSWORD")


def _applies(marker: object, target: Mapping[str, str], where: str) -> bool:
    """Whether an entry's environment marker holds for the target (one that cannot be decided holds)."""
    if marker is None:
        return True
    if not isinstance(marker, str):
        raise ConfigError(f"{where}: its marker must be a string", tip=TIP)
    try:
        return Marker(marker).evaluate(dict(target))
    except InvalidMarker as err:
        raise ConfigError(f"{where}: marker {marker!r} is not valid: {err}", tip=TIP) from err
    except (UndefinedComparison, UndefinedEnvironmentName):
        return True


def _pin(found: _Declarations, package: str, index: object, where: str, tool: str) -> Pin:
    """The indexes a package's ``source``/``index`` key names (None: it names none)."""
    if index is None:
        return None
    if not isinstance(index, str):
        raise ConfigError(f"{where}: {package}'s {tool} must be a string", tip=TIP)
    key = index.lower() if tool == "source" else index
    if key in found.unsupported:
        raise ConfigError(f"{where}: {package} is pinned to '{index}', {found.unsupported[key]}", tip=TIP)
    if key not in found.named:
        kind = "[[tool.poetry.source]]" if tool == "source" else "[[tool.uv.index]]"
        raise ConfigError(f"{where}: {package} names the {tool} '{index}', which no {kind} declares", tip=TIP)
    return found.named[key]


def _poetry(
    poetry: Mapping[str, object],
    pypi: tuple[Index, ...],
    environ: Mapping[str, str],
    target: Mapping[str, str],
    log: Log,
) -> _Declarations:
    found = _Declarations()
    by_priority: dict[str, list[tuple[Index, ...]]] = {p: [] for p in POETRY_PRIORITIES}
    for n, entry in enumerate(_tables(poetry.get("source"), "[[tool.poetry.source]]"), 1):
        where = f"pyproject.toml: [[tool.poetry.source]] number {n}"
        name, priority = entry.get("name"), entry.get("priority", "primary")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where} has no name", tip=TIP)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):  # it names variables and shows in messages
            msg = f"{where}: name {name!r} is not letters, digits, -, _ and ."
            raise ConfigError(msg, tip=TIP)
        where = f"pyproject.toml: Poetry source '{name}'"
        if not isinstance(priority, str) or priority.lower() not in POETRY_PRIORITIES:
            msg = f"{where}: priority {priority!r} is not primary, supplemental or explicit"
            raise ConfigError(msg, tip="Poetry 2 has no 'default' or 'secondary' priority: " + TIP)
        if name.lower() in found.named or name.lower() in found.unsupported:
            raise ConfigError(f"{where} is declared twice", tip=TIP)
        if name.lower() == "pypi":
            if "url" in entry:
                raise ConfigError(f"{where} has a url: Poetry's PyPI source takes none", tip=TIP)
            indexes = pypi
        else:
            url = _url(entry.get("url"), where)
            if re.search(r"\.html?$", urlsplit(url).path):
                found.unsupported[name.lower()] = "a single-page (find-links) source, which wheelbarrow cannot search"
                log.warning(f"{where}: {redact(url)} is a single page of links, not an index: it is not searched")
                continue
            prefix = "POETRY_HTTP_BASIC_" + name.upper().replace("-", "_")
            indexes = (_with_credentials(url, f"Poetry source '{name}'", environ, prefix),)
        found.named[name.lower()] = indexes
        by_priority[priority.lower()].append(indexes)
    if not by_priority["primary"] and "pypi" not in found.named:
        by_priority["primary"].append(pypi)  # Poetry's implicit PyPI: only when no source is primary
    found.searched = [i for group in (*by_priority["primary"], *by_priority["supplemental"]) for i in group]
    tables = [("[tool.poetry.dependencies]", poetry.get("dependencies"))]
    tables.append(("[tool.poetry.dev-dependencies]", poetry.get("dev-dependencies")))
    for group, body in _table(poetry.get("group"), "[tool.poetry.group]").items():
        tables.append((f"[tool.poetry.group.{group}.dependencies]", _table(body, "a group").get("dependencies")))
    for where, table in tables:
        for package, spec in _table(table, where).items():
            if package == "python":
                continue
            for constraint in spec if isinstance(spec, list) else [spec]:
                if isinstance(constraint, dict) and not _applies(constraint.get("markers"), target, where):
                    continue
                source = constraint.get("source") if isinstance(constraint, dict) else None
                pin = _pin(found, package, source, f"pyproject.toml: {where}", "source")
                found.pins.setdefault(canonicalize_name(package), []).append(pin)
    return found


def uv_env_name(name: str) -> str:
    """uv's spelling of an index name in its environment variables: ``corp.index-1`` is ``CORP_INDEX_1``."""
    return "".join(c.upper() if c.isascii() and c.isalnum() else "_" for c in name)


def _uv(
    uv: Mapping[str, object], pypi: tuple[Index, ...], environ: Mapping[str, str], target: Mapping[str, str], log: Log
) -> _Declarations:
    found = _Declarations()
    default: tuple[Index, ...] | None = None
    for n, entry in enumerate(_tables(uv.get("index"), "[[tool.uv.index]]"), 1):
        name = entry.get("name")
        if name is not None and not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9._-]+", name)):
            msg = f"pyproject.toml: [[tool.uv.index]] number {n}: name {name!r} is not letters, digits, -, _ and ."
            raise ConfigError(msg, tip=TIP)
        where = f"pyproject.toml: uv index '{name}'" if name else f"pyproject.toml: [[tool.uv.index]] number {n}"
        url = _url(entry.get("url"), where)
        flags = {key: entry.get(key, False) for key in ("default", "explicit")}
        if not all(isinstance(value, bool) for value in flags.values()):
            raise ConfigError(f"{where}: default and explicit must be true or false", tip=TIP)
        if name is not None and (name in found.named or name in found.unsupported):
            raise ConfigError(f"{where} is declared twice", tip=TIP)
        if entry.get("format", "simple") != "simple":
            reason = f"a {entry.get('format')!r} index, which wheelbarrow cannot search (only the simple API)"
            log.warning(f"{where}: {redact(url)} is {reason}: it is not searched")
            if name is not None:
                found.unsupported[name] = reason
            continue
        label = f"uv index '{name}'" if name else "uv index"
        index = _with_credentials(url, label, environ, f"UV_INDEX_{uv_env_name(name)}") if name else Index(url, label)
        if name is not None:
            found.named[name] = (index,)
        if flags["default"] and default is None:
            default = () if flags["explicit"] else (index,)  # default and explicit: explicit, and no PyPI
        elif not flags["explicit"]:
            found.searched.append(index)
    found.searched += pypi if default is None else default
    for package, spec in _table(uv.get("sources"), "[tool.uv.sources]").items():
        where = f"pyproject.toml: [tool.uv.sources] {package}"
        for entry in _tables(spec, "[tool.uv.sources] " + package):
            if _applies(entry.get("marker"), target, where):
                found.pins.setdefault(canonicalize_name(package), []).append(
                    _pin(found, package, entry.get("index"), where, "index")
                )
    return found
