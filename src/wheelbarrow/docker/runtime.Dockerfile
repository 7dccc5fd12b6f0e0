# wheelbarrow's default runtime image: the wheelhouse installed with no index
# and hashes required into /opt/venv, over a slim base with no compiler.
# The wheel files exist only in the first stage: the final image copies the
# venv, never the wheels (works with BuildKit and the legacy builder).
# Bytecode is compiled at build time with checked-hash pycs, and every file we
# add is stamped with SOURCE_DATE_EPOCH (wheelbarrow passes the wheelhouse's),
# so with BuildKit two builds from the same wheelhouse give the same image id.
# wheelbarrow appends EXPOSE and CMD from [tool.wheelbarrow] (port, command).
# BuildKit leaves SOURCE_DATE_EPOCH out of a step's cache key, so a layer
# stamped with another epoch would be reused: every step that stamps names
# WHEELBARROW_EPOCH (the same value, an ordinary build arg) as well.
ARG BASE=python:3.11-slim

FROM ${BASE} AS install
# A base may name another user; installing into /opt/venv takes root.
USER root
# pip lives in /opt/installer, which never reaches the final image: the venv
# gets pip only with KEEP_PIP=true. It is a layer of its own (making it takes
# seconds), kept while the base is the same. deps/ and app/ split the
# wheelhouse, so the dependencies' layer stays cached when only the project's
# own wheel changes. A build arg is part of the cache key of every RUN after
# its ARG line: the epoch (a new commit's time) is declared only where the
# stamping starts, so a commit does not install the dependencies again.
RUN python3 -m venv /opt/installer
ARG KEEP_PIP=false
COPY deps/ /tmp/deps/
RUN if [ "$KEEP_PIP" = "true" ]; then python3 -m venv /opt/venv; else python3 -m venv --without-pip /opt/venv; fi \
 && /opt/installer/bin/pip --python /opt/venv/bin/python install --no-index --no-cache-dir \
      --disable-pip-version-check --no-compile \
      --find-links /tmp/deps --require-hashes -r /tmp/deps/requirements.txt \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash /opt/venv/lib \
 && rm -rf /tmp/deps
ARG SOURCE_DATE_EPOCH=315532800
ARG WHEELBARROW_EPOCH=315532800
COPY app/ /tmp/app/
# The venv is copied out as /out/opt/venv with every mtime (/out/opt's too) set
# to SOURCE_DATE_EPOCH: copying /out/ to / carries /opt's stamp as well, which
# copying /opt/venv alone would leave at the time of the build.
RUN touch /tmp/app.installed \
 && /opt/installer/bin/pip --python /opt/venv/bin/python install --no-index --no-cache-dir \
      --disable-pip-version-check --no-compile \
      --find-links /tmp/app --no-deps --require-hashes -r /tmp/app/requirements.txt \
 && find /opt/venv/lib -name '*.py' -newer /tmp/app.installed \
      | /opt/venv/bin/python -m compileall -q --invalidation-mode checked-hash -i - \
 && rm -rf /tmp/app /tmp/app.installed \
 && mkdir -p /out/opt && cp -a /opt/venv /out/opt/venv \
 && find /out/opt -exec touch -h -d "@${WHEELBARROW_EPOCH}" {} +

# The slim image (runtime-style = "slim"); runtime-distroless.Dockerfile goes on from this stage.
FROM ${BASE} AS slim
USER root
ARG SOURCE_DATE_EPOCH=315532800
ARG WHEELBARROW_EPOCH=315532800
# The user's layer is stamped too: files the user tools changed get
# SOURCE_DATE_EPOCH, and useradd dates the account from it.
# The user has a home of its own (/home/app, mode 700, empty): servers keep
# state there (gunicorn its control socket), and a home of /nonexistent made
# them log permission errors.
# The group is 10001 too, as the image's USER 10001:10001 says (the process's group has a name).
RUN touch /tmp/.wheelbarrow-user \
 && if command -v useradd >/dev/null; then \
      groupadd --system --gid 10001 app \
      && useradd --system --uid 10001 --gid 10001 --home-dir /home/app --no-create-home \
        --shell /usr/sbin/nologin app; \
    else addgroup -S -g 10001 app && adduser -S -D -H -h /home/app -u 10001 -G app app; fi \
 && mkdir -p /home/app && chown 10001:10001 /home/app && chmod 700 /home/app \
 && find /etc /var /home -xdev -newer /tmp/.wheelbarrow-user ! -name hosts ! -name hostname ! -name resolv.conf \
      -exec touch -h -d "@${WHEELBARROW_EPOCH}" {} + \
 && rm /tmp/.wheelbarrow-user && touch -d "@${WHEELBARROW_EPOCH}" /tmp
COPY --from=install /out/ /
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
