
# wheelbarrow's distroless runtime (runtime-style = "distroless"), appended to
# runtime.Dockerfile: the closure stage starts from the slim image (the venv
# installed, the app user made) and copies into /distroless exactly what the
# service executes (wheelbarrow._closure: the interpreter, its standard library
# minus STDLIB_EXCLUDE, the venv, the files of the runtime-packages
# (RUNTIME_PACKAGES: libraries loaded by name), the shared-library closure of every ELF file
# resolved in the full runtime base, the dynamic loader, CA certificates,
# passwd and group, tzdata and glibc's iconv modules only with EXTRAS="tzdata gconv", dpkg entries of the
# packages the files came from), every mtime set to SOURCE_DATE_EPOCH (as
# WHEELBARROW_EPOCH, which is part of the step's cache key). The
# final image is FROM scratch: no shell, no package manager, no coreutils.
FROM slim AS closure
USER root
ARG SOURCE_DATE_EPOCH=315532800
ARG WHEELBARROW_EPOCH=315532800
ARG STDLIB_EXCLUDE=
ARG EXTRAS=
ARG RUNTIME_PACKAGES=
COPY closure/ /tmp/closure/
RUN PYTHONPATH=/tmp/closure python3 -S -m wheelbarrow._closure /distroless "$WHEELBARROW_EPOCH" \
      "$STDLIB_EXCLUDE" "$RUNTIME_PACKAGES" $EXTRAS

FROM scratch
COPY --from=closure /distroless/ /
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    VIRTUAL_ENV=/opt/venv \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
