# The project's builder: the builder base, the system packages the project's
# sdists compile against, and the pinned build requirements fetched on the
# host (wheels/), so builds run with the network off.
ARG BASE
FROM ${BASE}
ARG SYSTEM_PACKAGES=""
RUN set -e; \
    if [ -z "$SYSTEM_PACKAGES" ]; then exit 0; fi; \
    if command -v apt-get >/dev/null; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $SYSTEM_PACKAGES; \
      apt-get clean; rm -rf /var/lib/apt/lists/*; \
    elif command -v dnf >/dev/null; then dnf install -y $SYSTEM_PACKAGES; dnf clean all; \
    elif command -v yum >/dev/null; then yum install -y $SYSTEM_PACKAGES; yum clean all; \
    elif command -v apk >/dev/null; then apk add --no-cache $SYSTEM_PACKAGES; \
    else echo "wheelbarrow: no known package manager in the builder base" >&2; exit 1; fi
COPY check-offline /usr/local/bin/wheelbarrow-check-offline
COPY wheels/ /wheelbarrow/wheels/
# The project's own build requirements, installed once, so its wheel builds
# without an isolated environment (fast rebuilds after an edit). --upgrade: the
# versions fetched on the host win over any the base's venv came with.
ARG PYTHON=/opt/python/cp311-cp311/bin/python
COPY project-requires.txt /wheelbarrow/project-requires.txt
RUN if [ -s /wheelbarrow/project-requires.txt ]; then \
      "$PYTHON" -m pip install --upgrade --no-index --no-cache-dir --disable-pip-version-check \
        --find-links /wheelbarrow/wheels -r /wheelbarrow/project-requires.txt; \
    fi
