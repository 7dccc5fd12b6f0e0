import markupsafe
import psycopg2

__all__ = ["markupsafe", "psycopg2"]
