# wheelbarrow's default runtime image: the wheelhouse installed with no index
# and hashes required into /opt/venv, over a slim base with no compiler.
# The wheel files exist only in the first stage: the final image copies the
# venv, never the wheels (works with BuildKit and the legacy builder).
# wheelbarrow appends EXPOSE and CMD from [tool.wheelbarrow] (port, command).
ARG BASE=python:3.11-slim

FROM ${BASE} AS install
ARG KEEP_PIP=false
COPY wheelhouse/ /tmp/wheelhouse/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /tmp/wheelhouse --require-hashes -r /tmp/wheelhouse/requirements.txt \
 && if [ "$KEEP_PIP" != "true" ]; then \
      /opt/venv/bin/python -m pip uninstall --yes --disable-pip-version-check pip setuptools; \
    fi \
 && rm -rf /tmp/wheelhouse

FROM ${BASE}
RUN if command -v useradd >/dev/null; then \
      useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin app; \
    else adduser -S -D -H -u 10001 app; fi
COPY --from=install /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
