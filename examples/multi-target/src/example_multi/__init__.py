"""A WSGI app that says which interpreter and machine serve it, and whether its database answers."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Iterable
from typing import Any

import psycopg2

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def where() -> dict[str, str]:
    """The CPython and the machine this process runs on: what a target names."""
    return {
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "machine": platform.machine(),
        "libpq": str(psycopg2.__libpq_version__),
    }


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    payload: dict[str, Any] = where()
    status = "200 OK"
    if environ.get("PATH_INFO") == "/health":
        try:
            with psycopg2.connect(os.environ.get("DATABASE_URL", "")) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                payload["database"] = cur.fetchone()[0] == 1
        except psycopg2.Error as err:
            status, payload["error"] = "503 Service Unavailable", str(err).strip()
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
