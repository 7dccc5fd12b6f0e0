"""Runtime image size of the example service: wheelbarrow's image next to the usual alternatives.

Run from the repository root with wheelbarrow and its tools installed
(e.g. `.nox/tests/bin/python bench/image_sizes.py`). On the same runtime base
(the bootstrapped bookworm one) and from the same locked files, it builds and
measures, in one run:

1. the tutorial's approach: compiler and headers installed in the final image,
   psycopg2 compiled there (as in the tutorial's slim.Dockerfile);
2. the apt-purge approach: install build deps, compile, purge them (with the
   autoremove flags that really remove gcc) in one RUN;
3. wheelbarrow's image (`wheelbarrow image`), and the same with pip kept;
4. wheelbarrow's distroless image (`runtime-style = "distroless"`), and the
   smallest distroless variant that still passes every check of verify
   (`stdlib-exclude` extended with what the service never imports).

and prints sizes, build times, the ratios the project targets (wheelbarrow
<= 0.35x the tutorial's and smaller than apt-purge; distroless <= 70 MB),
and what the distroless images hold by category (interpreter, standard
library, libraries, venv, the rest), from `docker export`.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from wheelbarrow._cache import IGNORED_IN_PROJECT
from wheelbarrow._config import STDLIB_EXCLUDE

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "service"
BASE = "localhost/wheelbarrow/runtime-base:bookworm"
BUILD_DEPS = "build-essential libpq-dev python3-dev"
DISTROLESS = "example-service:0.1.0-distroless"
SMALLEST = "bench/wheelbarrow-distroless-smallest:size"
#: Beyond the default stdlib-exclude: modules (and the libraries their C parts link: ncurses, readline,
#: Berkeley DB, SQLite, libnsl with libtirpc and Kerberos, libcrypt) that neither gunicorn, psycopg2 nor
#: the service import.
NEVER_IMPORTED = (
    "curses", "_curses*", "readline", "dbm", "_dbm", "_gdbm", "sqlite3", "_sqlite3", "distutils", "pydoc",
    "xmlrpc", "venv", "__phello__", "__hello__", "antigravity", "this", "pdb", "_lzma", "lzma", "_bz2", "bz2",
    "nis", "crypt", "_crypt",
)  # fmt: skip
MAX_DISTROLESS = 70_000_000

INSTALL = (
    "python3 -m venv /opt/venv"
    " && /opt/venv/bin/pip install -q --no-index --find-links /tmp/dist --require-hashes -r /tmp/dist/requirements.txt"
    " && /opt/venv/bin/pip install -q --no-index --find-links /tmp/dist --no-deps /app"
)
TUTORIAL = f"""\
ARG BASE
FROM ${{BASE}}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {BUILD_DEPS} \\
 && rm -rf /var/lib/apt/lists/* && apt-get clean
COPY dist/ /tmp/dist/
COPY app/ /app/
RUN {INSTALL}
CMD ["/opt/venv/bin/gunicorn", "--bind", "0.0.0.0:8000", "example_service:app"]
"""
APT_PURGE = f"""\
ARG BASE
FROM ${{BASE}}
COPY dist/ /tmp/dist/
COPY app/ /app/
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {BUILD_DEPS} \\
 && {INSTALL} \\
 && apt-mark manual libpq5 \\
 && apt-get purge -y {BUILD_DEPS} \\
 && apt-get autoremove -y --purge -o APT::AutoRemove::RecommendsImportant=false \\
      -o APT::AutoRemove::SuggestsImportant=false \\
 && rm -rf /var/lib/apt/lists/* /tmp/dist /app && apt-get clean
CMD ["/opt/venv/bin/gunicorn", "--bind", "0.0.0.0:8000", "example_service:app"]
"""


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def size(tag: str) -> int:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip())


def wheelbarrow(*args: str) -> float:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "wheelbarrow", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"wheelbarrow {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - start


def context_for(tmp: Path) -> Path:
    """The same locked inputs the wheelhouse was built from: the export, its files, build requirements."""
    context = tmp / "context"
    dist = context / "dist"
    dist.mkdir(parents=True)
    poetry = Path(sys.executable).parent / "poetry"
    export = run([str(poetry), "export", "-f", "requirements.txt", "--only", "main"], cwd=EXAMPLE).stdout
    (dist / "requirements.txt").write_text(export, encoding="utf-8")
    pip = [sys.executable, "-m", "pip", "download", "-q", "-d", str(dist)]
    run([*pip, "--no-deps", "--require-hashes", "-r", str(dist / "requirements.txt")])
    run([*pip, "setuptools>=70.1", "poetry-core>=2,<3"])
    # the project's sources only: what wheelbarrow itself would copy (no wheelhouse/, dist/, .nox/ ...)
    shutil.copytree(EXAMPLE, context / "app", ignore=shutil.ignore_patterns(*IGNORED_IN_PROJECT))
    return context


def docker_build(context: Path, dockerfile: str, tag: str) -> float:
    (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    start = time.monotonic()
    run(["docker", "build", "--no-cache", "--network", "host", "--build-arg", f"BASE={BASE}", "-t", tag, str(context)])
    return time.monotonic() - start


def categories(tag: str) -> dict[str, int]:
    """Bytes of the image's regular files by what they are: interpreter, stdlib, libraries, venv, the rest."""
    name = run(["docker", "create", tag, "never-run"]).stdout.strip()
    try:
        export = subprocess.run(["docker", "export", name], capture_output=True, check=True).stdout
    finally:
        run(["docker", "rm", "-f", name])
    out = dict.fromkeys(("interpreter", "stdlib", "libraries", "venv", "other"), 0)
    with tarfile.open(fileobj=io.BytesIO(export)) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            path = member.name
            if path.startswith("opt/venv/"):
                kind = "venv"
            elif re.match(r"(usr/)?(local/)?bin/python3", path) or "/libpython3" in path:
                kind = "interpreter"
            elif re.match(r"(usr/)?(local/)?lib/python3\.\d+/", path):
                kind = "stdlib"
            elif re.search(r"\.so(\.[\d.]+)?$", path):
                kind = "libraries"
            else:
                kind = "other"
            out[kind] += member.size
    return out


def main() -> None:
    rows: list[tuple[str, str, float]] = []
    wheelbarrow("build", "--project", str(EXAMPLE))  # the wheelhouse (cached builds are fine: sizes are measured)
    with tempfile.TemporaryDirectory(prefix="wheelbarrow-sizes-") as tmp:
        context = context_for(Path(tmp))
        rows.append(
            (
                "tutorial: compiler + headers in the image",
                "bench/tutorial:size",
                docker_build(context, TUTORIAL, "bench/tutorial:size"),
            )
        )
        rows.append(
            (
                "apt-purge: build deps purged in one RUN",
                "bench/apt-purge:size",
                docker_build(context, APT_PURGE, "bench/apt-purge:size"),
            )
        )
    rows.append(
        (
            "wheelbarrow, pip kept in the venv",
            "bench/wheelbarrow-pip:size",
            wheelbarrow(
                "image", "--project", str(EXAMPLE), "-C", "keep-pip=true", "--image-tag", "bench/wheelbarrow-pip:size"
            ),
        )
    )
    rows.append(("wheelbarrow (default)", "example-service:0.1.0", wheelbarrow("image", "--project", str(EXAMPLE))))
    distroless = ("--project", str(EXAMPLE), "--runtime-style", "distroless")
    rows.append(("wheelbarrow, distroless", DISTROLESS, wheelbarrow("image", *distroless, "--image-tag", DISTROLESS)))
    smallest = ("-C", f"stdlib-exclude={','.join((*STDLIB_EXCLUDE, *NEVER_IMPORTED))}", "--image-tag", SMALLEST)
    rows.append(("wheelbarrow, distroless, smallest passing", SMALLEST, wheelbarrow("image", *distroless, *smallest)))
    base = size(BASE)
    sizes = {tag: size(tag) for _, tag, _ in rows}
    tutorial, purge, ours = sizes["bench/tutorial:size"], sizes["bench/apt-purge:size"], sizes["example-service:0.1.0"]
    print(f"runtime base {BASE}: {base / 1e6:.0f} MB")
    for label, tag, seconds in rows:
        print(f"{label:<45} {sizes[tag] / 1e6:6.1f} MB  {sizes[tag] / tutorial:5.2f}x tutorial  build {seconds:5.1f} s")
    for tag in (DISTROLESS, SMALLEST):
        parts = categories(tag)
        print(f"{tag}: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in parts.items()))
    print(
        json.dumps(
            {
                "wheelbarrow_vs_tutorial": round(ours / tutorial, 3),
                "wheelbarrow_vs_apt_purge": round(ours / purge, 3),
                "target_met": ours / tutorial <= 0.35 and ours < purge,
                "distroless_mb": round(sizes[DISTROLESS] / 1e6, 1),
                "distroless_target_met": sizes[DISTROLESS] <= MAX_DISTROLESS,
            }
        )
    )
    run(["docker", "rmi", "bench/tutorial:size", "bench/apt-purge:size", "bench/wheelbarrow-pip:size", SMALLEST])


if __name__ == "__main__":
    main()
