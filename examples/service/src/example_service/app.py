"""A tiny WSGI application on psycopg2.

GET  /health       runs a query and reports the server version.
POST /notes        stores the request body as a note and returns its id.
GET  /notes/<id>   reads a note back.

The database is named by the DATABASE_URL environment variable (a libpq
connection string or URI).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import psycopg2

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

SCHEMA = "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL)"


def _connect() -> Any:  # noqa: ANN401 - psycopg2 ships no type information
    return psycopg2.connect(os.environ.get("DATABASE_URL", ""))


def _reply(start_response: StartResponse, status: str, payload: dict[str, Any]) -> Iterable[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    try:
        with _connect() as conn, conn.cursor() as cur:
            if method == "GET" and path == "/health":
                cur.execute("SELECT version()")
                return _reply(start_response, "200 OK", {"status": "ok", "database": cur.fetchone()[0]})
            cur.execute(SCHEMA)
            if method == "POST" and path == "/notes":
                size = int(environ.get("CONTENT_LENGTH") or 0)
                text = environ["wsgi.input"].read(size).decode()
                cur.execute("INSERT INTO notes (body) VALUES (%s) RETURNING id", (text,))
                return _reply(start_response, "201 Created", {"id": cur.fetchone()[0]})
            if method == "GET" and path.startswith("/notes/") and path[7:].isdigit():
                cur.execute("SELECT body FROM notes WHERE id = %s", (int(path[7:]),))
                row = cur.fetchone()
                if row is None:
                    return _reply(start_response, "404 Not Found", {"error": "no such note"})
                return _reply(start_response, "200 OK", {"id": int(path[7:]), "body": row[0]})
    except psycopg2.Error as err:
        return _reply(start_response, "503 Service Unavailable", {"status": "error", "error": str(err).strip()})
    return _reply(start_response, "404 Not Found", {"error": f"no route for {method} {path}"})
