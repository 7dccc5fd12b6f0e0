"""A Flask app that says which psycopg2 it loaded."""

import psycopg2
from flask import Flask

__version__ = "1.0.0"
app = Flask(__name__)


@app.get("/")
def index() -> dict[str, str]:
    return {"psycopg2": psycopg2.__version__}
