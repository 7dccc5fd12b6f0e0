# wheelbarrow's default runtime image: the wheelhouse installed with no index
# and hashes required into /opt/venv, over a slim base with no compiler.
# The wheel files exist only in the first stage: the final image copies the
# venv, never the wheels (works with BuildKit and the legacy builder).
# Bytecode is compiled at build time with checked-hash pycs, so the venv's
# content does not depend on when it was built.
# wheelbarrow appends EXPOSE and CMD from [tool.wheelbarrow] (port, command).
ARG BASE=python:3.11-slim

FROM ${BASE} AS install
ARG KEEP_PIP=false
# pip lives in /opt/installer, which never reaches the final image: the venv
# gets pip only with KEEP_PIP=true. deps/ and app/ split the wheelhouse, so the
# dependencies' layer stays cached when only the project's own wheel changes.
COPY deps/ /tmp/deps/
RUN python3 -m venv /opt/installer \
 && if [ "$KEEP_PIP" = "true" ]; then python3 -m venv /opt/venv; else python3 -m venv --without-pip /opt/venv; fi \
 && /opt/installer/bin/pip --python /opt/venv/bin/python install --no-index --no-cache-dir \
      --disable-pip-version-check --no-compile \
      --find-links /tmp/deps --require-hashes -r /tmp/deps/requirements.txt \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash /opt/venv/lib \
 && rm -rf /tmp/deps
COPY app/ /tmp/app/
RUN touch /tmp/app.installed \
 && /opt/installer/bin/pip --python /opt/venv/bin/python install --no-index --no-cache-dir \
      --disable-pip-version-check --no-compile \
      --find-links /tmp/app --no-deps --require-hashes -r /tmp/app/requirements.txt \
 && find /opt/venv/lib -name '*.py' -newer /tmp/app.installed \
      | /opt/venv/bin/python -m compileall -q --invalidation-mode checked-hash -i - \
 && rm -rf /tmp/app /tmp/app.installed

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
