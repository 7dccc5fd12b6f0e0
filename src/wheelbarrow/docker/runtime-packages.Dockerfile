# The runtime base plus the system packages a service loads at run time
# (runtime-packages: plugins a library dlopens, which auditwheel cannot see).
# Built once per base image id and package list, with the network on for this
# step only; wheelbarrow then repairs for, installs into and verifies over it.
ARG BASE
FROM ${BASE}
ARG PACKAGES=""
USER root
RUN set -e; \
    if command -v apt-get >/dev/null; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES; \
      apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    elif command -v dnf >/dev/null; then dnf install -y $PACKAGES; dnf clean all; \
    elif command -v yum >/dev/null; then yum install -y $PACKAGES; yum clean all; \
    elif command -v apk >/dev/null; then apk add --no-cache $PACKAGES; \
    else echo "wheelbarrow: no known package manager in the runtime base" >&2; exit 1; fi
