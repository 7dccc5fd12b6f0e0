"""Fixture: a pure module, packed by the test into wbpriv_pure-1.0-py3-none-any.whl."""

WORD = "private"
