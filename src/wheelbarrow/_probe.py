"""Runs INSIDE a runtime image (sent on stdin to its python) and reports what it finds, as JSON.

Standard library only: it runs under the image's interpreter, not wheelbarrow's.
``python - wheels`` lists *.whl files only (used on the base, for comparison);
``python - full '["libssl.so.3"]'`` runs every check.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

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
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx")
SKIP = ("/proc", "/sys", "/dev")


def wheels() -> list[str]:
    found = []
    for root, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]  # noqa: PTH118 - os.walk yields strings
        found += [os.path.join(root, f) for f in files if f.endswith(".whl")]  # noqa: PTH118
    return sorted(found)


def tools() -> dict[str, str | None]:
    """Every compiler or linker driver on PATH or in the usual bin folders: name -> path."""
    folders = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin"]
    out: dict[str, str | None] = {}
    for folder in dict.fromkeys(f for f in folders if f):
        try:
            entries = sorted(Path(folder).iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name not in out and TOOL.match(entry.name) and os.access(entry, os.X_OK) and not entry.is_dir():
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


ELF_MAGIC = b"\x7fELF"
PT_INTERP = 3
#: What the dynamic loader prints when an executable cannot start: a library or a symbol is missing.
UNDEFINED = re.compile(r"undefined symbol: (\S+)")
LOADER_ERROR = re.compile(r"error while loading shared libraries|symbol lookup error|undefined symbol")


def elf_kind(path: Path) -> str | None:
    """ "executable" (it has a program interpreter), "shared" (any other ELF file) or None (not ELF)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != ELF_MAGIC or len(head) < 64:
                return None
            order = "<" if head[5] == 1 else ">"
            if head[4] == 2:  # ELFCLASS64
                (phoff,) = struct.unpack_from(order + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
            else:
                (phoff,) = struct.unpack_from(order + "I", head, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
            for i in range(min(phnum, 256)):
                f.seek(phoff + i * phentsize)
                entry = f.read(4)
                if len(entry) == 4 and struct.unpack(order + "I", entry)[0] == PT_INTERP:
                    return "executable"
    except (OSError, struct.error):
        return None
    return "shared"


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


def start(path: Path) -> str | None:
    """Start an executable that embeds Python with every symbol bound at once (LD_BIND_NOW): the loader's
    complaint, or None when it started (whatever it then did with ``--version``)."""
    env = {**os.environ, "LD_BIND_NOW": "1", "HOME": tempfile.gettempdir()}
    try:
        done = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=20,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None  # it started and kept running: the loader had nothing to say
    except OSError as err:
        return f"cannot run: {err}"
    said = done.stdout + done.stderr
    if done.returncode == 127 or LOADER_ERROR.search(said):
        return said.strip().splitlines()[-1][:300] if said.strip() else f"exit {done.returncode}"
    return None


def elf_report(site: Path) -> list[dict[str, object]]:
    """ldd of every ELF file in the venv; which are extension modules (imported by :func:`imports`); every
    executable that embeds Python started, and placed where its interpreter finds the venv (pyvenv.cfg
    beside it or one up)."""
    results: list[dict[str, object]] = []
    for path, kind in elf_files(VENV):
        # -r: for an executable, also bind every symbol (an extension's Py* symbols come from the
        # interpreter that loads it, so for shared objects only the libraries are checked).
        argv = ["ldd", "-r", str(path)] if kind == "executable" else ["ldd", str(path)]
        try:
            ldd = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False, timeout=60)
            lines = (ldd.stdout + ldd.stderr).splitlines()
        except subprocess.TimeoutExpired:
            lines = ["ldd-timed-out => not found"]
        missing = [line.split()[0] for line in lines if "not found" in line]
        missing += [f"symbol {m.group(1)}" for m in map(UNDEFINED.search, lines) if m]
        entry: dict[str, object] = {"file": str(path), "kind": kind, "missing": missing, "import_error": None}
        relative = path.relative_to(site) if path.is_relative_to(site) else None
        is_module = (
            kind == "shared"
            and relative is not None
            and path.suffix == ".so"
            and not any(part.endswith(".libs") for part in relative.parts[:-1])
        )
        entry["module"] = (
            ".".join([*relative.parts[:-1], relative.name.split(".")[0]]) if relative and is_module else None
        )
        linked = "\n".join(lines)
        embeds = kind == "executable" and ("libpython" in linked or any(re.match(r"symbol _?Py", m) for m in missing))
        entry["embeds_python"] = embeds
        if embeds:
            entry["start_error"] = None if missing else start(path)
            entry["sees_venv"] = any((folder / "pyvenv.cfg").is_file() for folder in (path.parent, path.parent.parent))
        results.append(entry)
    return results


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
PIP_CHECK_SECONDS = 300


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
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    names = {line.split()[0] for line in cache.splitlines() if "=>" in line}
    return {s: s in names for s in sonames}


def installed(packages: list[str]) -> dict[str, bool | None]:
    """Whether each system package is installed, from dpkg's or apk's database (None: neither is there)."""
    dpkg, apk = Path("/var/lib/dpkg/status"), Path("/lib/apk/db/installed")
    if dpkg.is_file():
        blocks = dpkg.read_text(encoding="utf-8", errors="replace").split("\n\n")
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
    return {p: p.split("=")[0] in have for p in packages}


def start_pip_check() -> tuple[subprocess.Popen[str] | None, str]:
    """Start ``pip check`` in the background (it is the slow check); :func:`finish` collects it."""
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": tempfile.gettempdir()}
    venv_pip = VENV / "bin" / "pip"
    if venv_pip.exists():
        argv, how = [str(venv_pip), "check"], "pip in the venv"
    else:  # pip is not in the venv: the interpreter's bundled pip wheel checks it from outside
        bundled = sorted(Path("/usr/share/python-wheels").glob("pip-*.whl"))
        bundled += sorted(Path(sysconfig.get_paths()["stdlib"], "ensurepip", "_bundled").glob("pip-*.whl"))
        if not bundled:
            return None, "no pip available outside the venv"
        # The venv's own interpreter runs pip straight from the wheel (on its path only for this
        # process), which checks the venv like pip --python would, without starting pip twice.
        argv = [str(VENV / "bin" / "python"), str(bundled[-1] / "pip"), "check"]
        how = "pip from outside the venv"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return proc, how


def finish(started: tuple[subprocess.Popen[str] | None, str]) -> dict[str, object]:
    proc, how = started
    if proc is None:
        return {"ok": False, "how": how, "output": ""}
    try:
        output, _ = proc.communicate(timeout=PIP_CHECK_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"ok": False, "how": how, "output": f"pip check did not finish in {PIP_CHECK_SECONDS} s"}
    return {"ok": proc.returncode == 0, "how": how, "output": output[-2000:]}


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    if mode == "wheels":
        print(REPORT + json.dumps({"wheels": wheels()}))
        return
    expected = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
    packages = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
    site = site_packages()
    checking = start_pip_check() if site else (None, "no venv")
    elf = elf_report(site) if site else []
    failed, libssl, stuck = imports([str(e["module"]) for e in elf if e["module"]]) if site else ({}, [], "")
    for entry in elf:
        if entry["module"]:
            entry["import_error"] = failed.get(str(entry["module"])) or (stuck or None)
    report = {
        "uid": os.getuid(),
        "python": sysconfig.get_python_version(),
        "tools": tools(),
        "headers": headers(),
        "elf": elf,
        "libssl_mapped": libssl if libssl is not None else [],
        "expected_from_base": provided(expected),
        "runtime_packages": installed(packages),
        "wheels": wheels(),
        "pip_check": finish(checking),
        "venv_writable": os.access(VENV / "lib", os.W_OK),
    }
    print(REPORT + json.dumps(report))


if __name__ == "__main__":
    main()
