"""A C extension whose setup.py must run only inside wheelbarrow's builder container.

It stands for an sdist whose setup.py needs the builder's system libraries
(pkg-config, a ``*_config`` script) as soon as it runs. Run anywhere else, as
``pip download`` of an sdist runs it on the host to prepare metadata, it
writes a marker file (its path is in ``MARKER``, which the test writes into the
sdist) and fails.
"""

import sys
from pathlib import Path

ONLY_IN_THE_BUILDER = Path("/usr/local/bin/wheelbarrow-check-offline")

if not ONLY_IN_THE_BUILDER.exists():
    here = Path(__file__).resolve().parent
    marker = Path((here / "MARKER").read_text(encoding="utf-8").strip())
    marker.write_text(f"setup.py of wheelbarrow-hostile ran outside the builder, in {here}\n", encoding="utf-8")
    sys.exit("wheelbarrow-hostile needs the builder's libraries: this is not the builder container")

from setuptools import Extension, setup  # noqa: E402 - only once we know we are in the builder

setup(ext_modules=[Extension("hostile", ["hostile.c"])])
