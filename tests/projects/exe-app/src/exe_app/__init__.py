"""A WSGI app that uWSGI's embedded interpreter imports from the venv."""

from collections.abc import Callable, Iterable


def app(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served from the venv"]
