"""Runs INSIDE a runtime image (sent on stdin to its python) and reports what it finds, as JSON.

Standard library only: it runs under the image's interpreter, not wheelbarrow's, with no shell and no
tool of the image (a distroless image has none): :mod:`wheelbarrow._elf` (sent with it) resolves
libraries, and the installed distributions' metadata is reported for the host to judge.
:data:`wheelbarrow._verify.BOOT` runs it with its arguments: ``wheels`` lists *.whl files only (used on the
base, for comparison); ``full '["libssl.so.3"]' '["libpq5"]'`` runs every check (the sonames expected from
the base, the runtime-packages).
"""

from __future__ import annotations

import email.parser
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from wheelbarrow import _elf

VENV = Path("/opt/venv")
#: The start of the line that carries the report (the probe runs with -S: no .pth of the venv runs in it).
REPORT = "wheelbarrow-probe-report: "
#: Compilers, assemblers, linkers and build drivers, by name: any version suffix (gcc-12) and any
#: target prefix (x86_64-linux-gnu-gcc) counts.
TOOL = re.compile(
    r"^(?:[\w.]+-linux-gnu(?:eabihf)?-)?"
    r"(?:cc|c\+\+|cpp|gcc|g\+\+|clang|clang\+\+|clang-cpp|tcc|icc|gfortran|ld|ld\.(?:bfd|gold|lld|mold)|gold|as|make|gmake|ninja)"
    r"(?:-\d+(?:\.\d+)*)?$"
)
#: What a distroless image must not hold: a shell, a package manager, a busybox, the coreutils people reach
#: for first (by name, in the system's bin folders; the venv's console scripts are the service's own).
SHELL = re.compile(
    r"^(?:sh|ash|dash|bash|rbash|zsh|ksh|ksh93|mksh|csh|tcsh|fish|busybox|toybox|"
    r"apt|apt-get|aptitude|dpkg|apk|rpm|dnf|yum|microdnf|"
    r"ls|cat|cp|mv|rm|env|chmod|chown|ln|mkdir|echo|id|sleep|head|tail|wget|curl)$"
)
SYSTEM_BIN = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx")
SKIP = ("/proc", "/sys", "/dev")


def wheels() -> list[str]:
    found = []
    for root, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]  # noqa: PTH118 - os.walk yields strings
        found += [os.path.join(root, f) for f in files if f.endswith(".whl")]  # noqa: PTH118
    return sorted(found)


def tools(pattern: re.Pattern[str] = TOOL, folders: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Every program named by ``pattern`` (compilers and linker drivers) on PATH or in the usual bin
    folders, or in ``folders`` when given: name -> path."""
    folders = folders or (
        *os.environ.get("PATH", "").split(os.pathsep),
        "/usr/bin",
        "/usr/local/bin",
        "/bin",
        "/usr/sbin",
    )
    out: dict[str, str | None] = {}
    for folder in dict.fromkeys(f for f in folders if f):
        try:
            entries = sorted(Path(folder).iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name not in out and pattern.match(entry.name) and os.access(entry, os.X_OK) and not entry.is_dir():
                out[entry.name] = str(entry)
    return out


def headers() -> list[str]:
    """C and C++ headers where a compiler would find them: the system's include folders and Python's."""
    tops = {"/usr/include", "/usr/local/include", "/opt/include"}
    tops |= {sysconfig.get_paths().get(key, "") for key in ("include", "platinclude")}
    found = []
    for top in sorted(t for t in tops if t):
        for root, _dirs, files in os.walk(top):
            found += [os.path.join(root, f) for f in files if f.endswith(HEADER_SUFFIXES)]  # noqa: PTH118
    return sorted(set(found))


def site_packages() -> Path | None:
    """The venv's site-packages, found on disk (asking its interpreter would run its .pth files)."""
    if not (VENV / "bin" / "python").exists():
        return None
    found = sorted(VENV.glob("lib/python3*/site-packages"))
    return found[-1] if found else None


#: What the dynamic loader prints when an executable cannot start: a library or a symbol is missing.
LOADER_ERROR = re.compile(r"error while loading shared libraries|symbol lookup error|undefined symbol")


def elf_kind(path: Path) -> str | None:
    """ "executable" (it has a program interpreter), "shared" (any other ELF file), "unreadable" (ELF by its
    first bytes, but truncated or malformed: the loader cannot load it either) or None (not ELF)."""
    found = _elf.read_path(str(path))
    if found is None:
        try:
            with path.open("rb") as f:
                return "unreadable" if f.read(4) == _elf.ELF_MAGIC else None
        except OSError:
            return None
    return "executable" if found.interpreter else "shared"


def is_module(path: Path, dynamic: _elf.Dynamic | None) -> bool:
    """Whether the shared object ``path`` is an extension module: it exports ``PyInit_<its name>`` (or, when
    its symbols cannot be read, it is named like one). A plain library a package keeps beside its modules
    (``pkg/lib/libfoo.so``) is not imported: importing it fails though the package works."""
    name = path.name.split(".")[0]
    if dynamic is None or not dynamic.has_symbols:
        return True
    return f"PyInit_{name}" in dynamic.inits or any(i.startswith("PyInitU_") for i in dynamic.inits)


def elf_files(top: Path) -> list[tuple[Path, str]]:
    """Every ELF file under ``top`` (links are not followed: the venv's python links to the base's)."""
    found = []
    for root, _dirs, files in os.walk(top):
        for name in files:
            path = Path(root, name)
            kind = None if path.is_symlink() or not path.is_file() else elf_kind(path)
            if kind:
                found.append((path, kind))
    return sorted(found)


def _quietly(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``env`` added to the probe's own, no input, its output captured as text."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        errors="replace",
        env={**os.environ, **env},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def start(path: Path) -> str | None:
    """Start an executable that embeds Python with every symbol bound at once (LD_BIND_NOW): the loader's
    complaint, or None when it started (whatever it then did with ``--version``)."""
    try:
        done = _quietly([str(path), "--version"], {"LD_BIND_NOW": "1", "HOME": tempfile.gettempdir()}, 20)
    except subprocess.TimeoutExpired:
        return None  # it started and kept running: the loader had nothing to say
    except OSError as err:
        return f"cannot run: {err}"
    said = done.stdout + done.stderr
    if done.returncode == 127 or LOADER_ERROR.search(said):
        return said.strip().splitlines()[-1][:300] if said.strip() else f"exit {done.returncode}"
    return None


#: What glibc's loader says, tracing with every symbol bound, of a symbol no object it loads defines.
UNDEFINED = re.compile(r"undefined symbol: (\S+)")


def unbound(path: Path, loader: str) -> list[str]:
    """The symbols the executable ``path`` needs that nothing it loads defines, as ``ldd -r`` says them
    without ldd: glibc's ``loader`` run on it with ``LD_TRACE_LOADED_OBJECTS`` maps and binds (LD_BIND_NOW,
    LD_WARN) and exits, never running the program. Only a glibc loader (``ld-linux*``) is asked: musl's
    ignores the variable and would run the program."""
    if not Path(loader).name.startswith("ld-linux") or not Path(loader).is_file():
        return []
    try:
        done = _quietly([loader, str(path)], {"LD_TRACE_LOADED_OBJECTS": "1", "LD_BIND_NOW": "1", "LD_WARN": "yes"}, 60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return [f"not listed by its loader: {err}"]
    return sorted({f"symbol {m.group(1)}" for m in UNDEFINED.finditer(done.stdout + done.stderr)})


def elf_report(site: Path) -> list[dict[str, object]]:
    """Every ELF file in the venv, with the libraries the loader would not find (resolved by
    :mod:`wheelbarrow._elf` as glibc's loader searches, no ``ldd``, so an image with no shell is checked the
    same way) and, for an executable, the symbols nothing defines (:func:`unbound`); which are extension
    modules (imported by :func:`imports`); every executable that embeds Python started, and placed where
    its interpreter finds the venv (pyvenv.cfg beside it or one up)."""
    results: list[dict[str, object]] = []
    cache = _elf.ld_cache()
    library_path = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    for path, kind in elf_files(VENV):
        if kind == "unreadable":
            said = "not a readable ELF file (truncated or malformed): the loader cannot load it either"
            results.append({"file": str(path), "kind": kind, "missing": [], "import_error": said})
            results[-1].update({"module": None, "embeds_python": False})
            continue
        resolved = _elf.resolve([str(path)], cache, library_path)
        missing = sorted(resolved.missing)
        missing += [f"loader {i}" for i in resolved.interpreters if not Path(i).exists()]
        dynamic = _elf.read_path(str(path))
        if kind == "executable" and not missing and dynamic is not None:
            missing += unbound(path, dynamic.interpreter)  # an extension's Py* symbols are its importer's
        entry: dict[str, object] = {"file": str(path), "kind": kind, "missing": missing, "import_error": None}
        relative = path.relative_to(site) if path.is_relative_to(site) else None
        module = (
            kind == "shared"
            and relative is not None
            and path.suffix == ".so"
            and not any(part.endswith(".libs") for part in relative.parts[:-1])
            and is_module(path, dynamic)
        )
        entry["module"] = ".".join([*relative.parts[:-1], relative.name.split(".")[0]]) if relative and module else None
        linked = [*resolved.found, *resolved.missing]
        embeds = kind == "executable" and (
            any(s.startswith("libpython") for s in linked) or (dynamic is not None and dynamic.imports_python)
        )
        entry["embeds_python"] = embeds
        if embeds:
            entry["start_error"] = None if missing else start(path)
            entry["sees_venv"] = any((folder / "pyvenv.cfg").is_file() for folder in (path.parent, path.parent.parent))
        results.append(entry)
    return results


def scripts(folder: Path) -> list[dict[str, str]]:
    """Every script in ``folder`` (the venv's bin) whose ``#!`` interpreter is not there: an absolute path
    that is no executable file, or ``/usr/bin/env NAME`` with no NAME on PATH. Such a script cannot start
    (``exec ...: no such file or directory``), as a ``#!/bin/sh`` one cannot in a distroless image."""
    broken = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink()) if folder.is_dir() else []:
        try:
            with path.open("rb") as f:
                first = f.read(256).split(b"\n", 1)[0]
        except OSError:
            continue
        if not first.startswith(b"#!"):
            continue
        words = first[2:].decode("utf-8", "replace").split()
        if not words:
            broken.append({"file": str(path), "interpreter": "(none)"})
            continue
        interpreter, named = words[0], words[0]
        if Path(interpreter).name == "env":
            named = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), "")
            found = shutil.which(named) if named else None
            ok = Path(interpreter).is_file() and found is not None
        else:
            ok = Path(interpreter).is_file() and os.access(interpreter, os.X_OK)
        if not ok:
            broken.append(
                {"file": str(path), "interpreter": f"{interpreter} {named}" if named != interpreter else named}
            )
    return broken


#: Runs in a child process of the venv's interpreter: imports each module, then ssl, and writes what
#: failed and which libssl files are mapped to the file named by argv[1]. The venv's code (its .pth
#: files, the modules imported) runs only there, never in the probe that writes the report.
IMPORTER = """
import importlib, json, os, sys
failed = {}
for name in json.loads(sys.argv[2]):
    try:
        importlib.import_module(name)
    except BaseException as err:
        failed[name] = type(err).__name__ + ": " + str(err)
import ssl
maps = open("/proc/self/maps", encoding="utf-8").read().splitlines()
libssl = sorted({l.split()[-1] for l in maps if "/" in l and os.path.basename(l.split()[-1]).startswith("libssl")})
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"failed": failed, "libssl": libssl}, out)
"""
IMPORT_SECONDS = 120


def imports(modules: list[str]) -> tuple[dict[str, str], list[str] | None, str]:
    """Import ``modules`` (and ssl) in one child process, in at most ``IMPORT_SECONDS``: (module -> its
    error, the libssl files mapped, and why the child gave no answer, or "")."""
    with tempfile.TemporaryDirectory(prefix="wheelbarrow-probe-") as folder:
        answer = Path(folder, "imports.json")
        argv = [str(VENV / "bin" / "python"), "-c", IMPORTER, str(answer), json.dumps(modules)]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                stdin=subprocess.DEVNULL,
                timeout=IMPORT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {}, None, f"importing the extension modules did not finish in {IMPORT_SECONDS} s"
        if not answer.is_file():
            said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {}, None, f"importing the extension modules ended with exit {done.returncode}: {said[0][:300]}"
        found = json.loads(answer.read_text(encoding="utf-8"))
    return dict(found["failed"]), list(found["libssl"]), ""


def provided(sonames: list[str]) -> dict[str, bool]:
    """Whether the loader finds each soname (ld.so.cache, then the default folders) for this interpreter."""
    cache = _elf.ld_cache()
    me = _elf.read_path(os.path.realpath(sys.executable))
    if me is None:
        return dict.fromkeys(sonames, False)
    return {s: _elf.find(s, cache, me.machine, me.wide) is not None for s in sonames}


def installed(packages: list[str], root: Path = Path("/")) -> dict[str, bool | None]:
    """Whether each system package is installed, from dpkg's or apk's database under ``root`` (None: neither
    is there); a package named with its architecture or version (``libmagic1:amd64=1:5.44-3``) by its name."""
    dpkg, apk = root / "var/lib/dpkg/status", root / "lib/apk/db/installed"
    entries = root / "var/lib/dpkg/status.d"  # a distroless image: one entry per package whose files it has
    if dpkg.is_file() or entries.is_dir():
        texts = [dpkg] if dpkg.is_file() else sorted(p for p in entries.iterdir() if p.is_file())
        blocks = [b for t in texts for b in t.read_text(encoding="utf-8", errors="replace").split("\n\n")]
        blocks = [b if dpkg.is_file() else b + "\nStatus: install ok installed" for b in blocks]
        have = {
            line.split(":", 1)[1].strip()
            for block in blocks
            if "Status: install ok installed" in block
            for line in block.splitlines()
            if line.startswith("Package:")
        }
    elif apk.is_file():
        have = {line[2:].strip() for line in apk.read_text(encoding="utf-8").splitlines() if line.startswith("P:")}
    else:
        return dict.fromkeys(packages)
    return {p: re.split("[=:]", p)[0] in have for p in packages}


def distributions(site: Path) -> list[dict[str, object]]:
    """Each distribution installed in the venv: name, version and Requires-Dist, from its METADATA (judged
    on the host with ``packaging``, so no pip is needed in the image)."""
    found: list[dict[str, object]] = []
    for info in sorted(site.glob("*.dist-info")):
        try:
            text = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""  # reported with no name: the host says which folder it is
        meta = email.parser.HeaderParser().parsestr(text)
        requires = meta.get_all("Requires-Dist", [])
        found.append({"name": meta["Name"], "version": meta["Version"], "requires": requires, "path": info.name})
    return found


def environment() -> dict[str, str]:
    """The values of PEP 508's environment markers for this interpreter (as packaging computes them)."""
    version = sys.implementation.version
    implementation = f"{version.major}.{version.minor}.{version.micro}"
    if version.releaselevel != "final":
        implementation += version.releaselevel[0] + str(version.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": implementation,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    if mode == "wheels":
        print(REPORT + json.dumps({"wheels": wheels()}))
        return
    expected = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
    packages = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
    site = site_packages()
    elf = elf_report(site) if site else []
    failed, libssl, stuck = imports([str(e["module"]) for e in elf if e["module"]]) if site else ({}, [], "")
    for entry in elf:
        if entry["module"]:
            entry["import_error"] = failed.get(str(entry["module"])) or (stuck or None)
    report = {
        "uid": os.getuid(),
        "python": sysconfig.get_python_version(),
        "tools": tools(),
        "shells": tools(SHELL, SYSTEM_BIN),
        "headers": headers(),
        "elf": elf,
        "libssl_mapped": libssl if libssl is not None else [],
        "expected_from_base": provided(expected),
        "runtime_packages": installed(packages),
        "wheels": wheels(),
        "distributions": distributions(site) if site else [],
        "environment": environment(),
        "venv_writable": os.access(VENV / "lib", os.W_OK),
        "scripts": scripts(VENV / "bin"),
    }
    print(REPORT + json.dumps(report))


if __name__ == "__main__":
    main()
