"""Example service: a WSGI app that keeps notes in PostgreSQL."""

from example_service.app import app

__all__ = ["app"]
