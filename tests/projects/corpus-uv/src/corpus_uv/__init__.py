"""A FastAPI app that says which of its compiled dependencies it loaded."""

from __future__ import annotations

import psycopg2
import pydantic_core
import sqlalchemy
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def index() -> dict[str, str]:
    return {
        "psycopg2": psycopg2.__version__,
        "pydantic_core": pydantic_core.__version__,
        "sqlalchemy": sqlalchemy.__version__,
    }
