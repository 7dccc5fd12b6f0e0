# Slim runtime base bootstrapped from Debian packages: python3 and venv only,
# no compiler, no headers, no apt lists or caches. Built by
# `wheelbarrow bootstrap`.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
