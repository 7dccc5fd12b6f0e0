"""The peers, run as their users run them, on the example service (one run, printed as seconds).

Imported by bench/benchmark.py, which prints the ratios against wheelbarrow. Each peer gets what
wheelbarrow gets, no more:

* **cibuildwheel as its users configure it**: the same builder base wheelbarrow derives (the runtime base
  plus a compiler), ``before-all`` installing the system packages on every run (cibuildwheel keeps no
  cache on Linux), the psycopg2 sdist unpacked as the package. The container's network is on for
  apt-get, as a user's is; the build requirements come from a folder inside the package
  (``PIP_FIND_LINKS``), because containers here do not trust the host's TLS proxy;
* **the tutorial's Dockerfile** (a compiler and headers in the final image, ``pip install`` of the
  exported requirements, then the app), ``docker build --no-cache``, and again after an edit to the
  app's code with the layer cache;
* **a multi-stage Dockerfile** in the style of uv's Docker guide (a builder stage makes a venv with a
  BuildKit cache mount for pip's cache, the final stage copies the venv and installs libpq5), cold and
  after an edit.

Both Dockerfiles start from the runtime base wheelbarrow uses (python:3.11-slim where it can be pulled,
else the bootstrapped Debian bookworm one, which needs python3-dev for headers and a venv for pip) and
install from the example's locked files downloaded on the host beforehand (``--no-index --find-links``),
for the same reason: the image build cannot reach the index through the proxy. Their downloads are
therefore not timed; wheelbarrow's cold runs do include its fetch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from benchmark import timed  # bench/ is this script's folder, so it is on sys.path

#: What psycopg2 compiles against, and what the service loads at run time, on Debian.
BUILD_PACKAGES = "gcc libc6-dev libpq-dev python3-dev"
BUILD_TOOLS = ("setuptools", "wheel", "poetry-core>=2,<3")

TUTORIAL = """\
ARG BASE
FROM ${{BASE}}
USER root
RUN apt-get update && apt-get install -y --no-install-recommends {build} \\
    && rm -rf /var/lib/apt/lists/* && apt-get clean
RUN python3 -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /app
COPY pkgs/ /pkgs/
COPY requirements.txt ./
RUN pip install --no-index --find-links /pkgs --require-hashes -r requirements.txt
COPY . .
RUN pip install --no-index --find-links /pkgs . --no-deps
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "example_service:app"]
"""

MULTISTAGE = """\
ARG BASE
FROM ${{BASE}} AS build
USER root
RUN apt-get update && apt-get install -y --no-install-recommends {build} \\
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /venv
ENV PATH=/venv/bin:$PATH
COPY pkgs/ /pkgs/
COPY requirements.txt /app/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \\
    pip install --no-index --find-links /pkgs --require-hashes -r /app/requirements.txt
COPY . /app
RUN --mount=type=cache,target=/root/.cache/pip pip install --no-index --find-links /pkgs --no-deps /app

FROM ${{BASE}}
USER root
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 \\
    && rm -rf /var/lib/apt/lists/* && apt-get clean
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH
USER 10001
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "example_service:app"]
"""


def exported_requirements(project: Path) -> str:
    poetry = Path(sys.executable).parent / "poetry"
    proc = subprocess.run(
        [str(poetry), "export", "-f", "requirements.txt", "--only", "main"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def dockerfile_context(project: Path, dest: Path, text: str) -> Path:
    """The project, its exported requirements and every locked file (and the build tools), downloaded on
    the host; the Dockerfile for ``base``."""
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns("wheelhouse", ".nox", "__pycache__", "dist"))
    (dest / "requirements.txt").write_text(exported_requirements(project), encoding="utf-8")
    pkgs = dest / "pkgs"
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(pkgs)]
    timed([*pip, "--no-binary", "psycopg2", "--require-hashes", "-r", str(dest / "requirements.txt")])
    timed([*pip, *BUILD_TOOLS])
    (dest / "Dockerfile").write_text(text.format(build=BUILD_PACKAGES), encoding="utf-8")
    return dest


def docker_build(context: Path, tag: str, base: str, *, cache: bool) -> float:
    argv = ["docker", "build", "--network", "host", "--build-arg", f"BASE={base}", "-t", tag]
    argv += [] if cache else ["--no-cache"]
    return timed([*argv, str(context)], env={**os.environ, "DOCKER_BUILDKIT": "1"})


def edit(context: Path, n: int) -> None:
    app = context / "src" / "example_service" / "app.py"
    app.write_text(app.read_text(encoding="utf-8") + f"\n# peer edit {n}\n", encoding="utf-8")


def dockerfile_peer(project: Path, tmp: Path, name: str, text: str, base: str) -> dict[str, float]:
    """Cold (``--no-cache``), then after an edit to the app (layer cache on); the image removed after."""
    context = dockerfile_context(project, tmp / name, text)
    tag = f"wheelbarrow-bench-{name}:latest"
    try:
        cold = docker_build(context, tag, base, cache=False)
        edit(context, 1)
        after_edit = docker_build(context, tag, base, cache=True)
        size = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True, check=True
        ).stdout.strip()
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    return {"cold": cold, "edit": after_edit, "size_mb": int(size) / 1e6}


def cibuildwheel_as_used(sdist: Path, builder_base: str, tmp: Path) -> float:
    """cibuildwheel on the unpacked sdist, ``before-all`` installing libpq-dev as its docs show."""
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp / "src", filter="data")
    (package,) = (tmp / "src").iterdir()
    timed([sys.executable, "-m", "pip", "download", "-q", "-d", str(package / "build-tools"), "setuptools", "wheel"])
    env = {
        **os.environ,
        "CIBW_BUILD": "cp311-manylinux_x86_64",
        "CIBW_MANYLINUX_X86_64_IMAGE": builder_base,
        "CIBW_BEFORE_ALL_LINUX": "apt-get update && apt-get install -y --no-install-recommends libpq-dev",
        # cibuildwheel copies its working directory to /project in the container
        "CIBW_ENVIRONMENT_LINUX": f"PIP_NO_INDEX=1 PIP_FIND_LINKS=/project/{package.relative_to(tmp)}/build-tools",
        "CIBW_BUILD_FRONTEND": "build",
    }
    cibuildwheel = Path(sys.executable).parent / "cibuildwheel"
    argv = [str(cibuildwheel), "--platform", "linux", "--output-dir", str(tmp / "out"), str(package.relative_to(tmp))]
    return timed(argv, env=env, cwd=tmp)  # cibuildwheel builds a package inside its working directory
