from setuptools import Extension, setup

setup(
    packages=["ext_app"],
    package_dir={"": "src"},
    ext_modules=[Extension("ext_app._speed", ["src/ext_app/_speed.c"])],
)
