"""A WSGI app that imports a service's worth of libraries, compiled ones included, and says which."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

MODULES = (
    "django", "rest_framework", "celery", "redis", "psycopg2", "requests", "boto3", "cryptography",
    "pydantic", "sqlalchemy", "alembic", "sentry_sdk", "structlog", "jwt", "orjson", "jinja2", "yaml",
)  # fmt: skip


def app(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
    loaded = [importlib.import_module(name).__name__ for name in MODULES]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [" ".join(loaded).encode()]
