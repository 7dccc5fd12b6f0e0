"""The build fetches a file at build time, as some real projects do."""

import urllib.request

from setuptools import setup

urllib.request.urlopen("http://downloads.example.org/data.json", timeout=5)
setup(py_modules=[])
