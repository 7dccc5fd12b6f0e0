"""Runs INSIDE a runtime image (sent on stdin to its python) and reports what it finds, as JSON.

Standard library only: it runs under the image's interpreter, not wheelbarrow's.
``python - wheels`` lists *.whl files only (used on the base, for comparison);
``python - full '["libssl.so.3"]'`` runs every check.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

VENV = Path("/opt/venv")
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
    python = VENV / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def extensions(site: Path) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for path in sorted(site.rglob("*.so*")):
        if not path.is_file():
            continue
        ldd = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        missing = [line.split()[0] for line in ldd.stdout.splitlines() if "not found" in line]
        relative = path.relative_to(site)
        is_module = not any(part.endswith(".libs") for part in relative.parts[:-1]) and path.suffix == ".so"
        module = ".".join([*relative.parts[:-1], relative.name.split(".")[0]]) if is_module else None
        error = None
        if module:
            try:
                importlib.import_module(module)
            except Exception as err:  # noqa: BLE001 - any import failure is the finding
                error = f"{type(err).__name__}: {err}"
        results.append({"file": str(relative), "module": module, "missing": missing, "import_error": error})
    return results


def libssl_mapped() -> list[str]:
    import ssl  # noqa: F401, PLC0415 - mapped on purpose: Python's own OpenSSL

    maps = Path("/proc/self/maps").read_text(encoding="utf-8").splitlines()
    paths = {line.split()[-1] for line in maps if "/" in line}
    return sorted(p for p in paths if Path(p).name.startswith("libssl"))


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
    output, _ = proc.communicate()
    return {"ok": proc.returncode == 0, "how": how, "output": output[-2000:]}


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    if mode == "wheels":
        print(json.dumps({"wheels": wheels()}))
        return
    expected = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
    packages = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
    site = site_packages()
    if site is not None:
        sys.path.insert(0, str(site))
    checking = start_pip_check() if site else (None, "no venv")
    report = {
        "uid": os.getuid(),
        "python": sysconfig.get_python_version(),
        "tools": tools(),
        "headers": headers(),
        "extensions": extensions(site) if site else [],
        "libssl_mapped": libssl_mapped(),
        "expected_from_base": provided(expected),
        "runtime_packages": installed(packages),
        "wheels": wheels(),
        "pip_check": finish(checking),
        "venv_writable": os.access(VENV / "lib", os.W_OK),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
