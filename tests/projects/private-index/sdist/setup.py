"""A tiny C extension, served only by the test's private index as an sdist, compiled in the builder."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wbpriv_ext", ["wbpriv_ext.c"])])
