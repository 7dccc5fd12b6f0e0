from setuptools import Extension, setup

setup(
    packages=["dlopen_app"],
    package_dir={"": "src"},
    ext_modules=[Extension("dlopen_app._zstd", ["src/dlopen_app/_zstd.c"])],
)
