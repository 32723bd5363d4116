"""Packages for setuptools: the repository's app/, models/ and worker/ install as deepclust.*.

The folders stay at the top of the repository (the product card's layout); in site-packages
they live under one name, ``deepclust``, so nothing called ``app``, ``models`` or ``worker``
shadows another project's package. pyproject.toml's [tool.setuptools] cannot prefix the
packages it finds, so the list is made here; everything else is in pyproject.toml.
"""
from setuptools import find_packages, setup

FOLDERS = ("app", "models", "worker")
subpackages = find_packages(include=[f"{folder}*" for folder in FOLDERS])
setup(
    packages=["deepclust", *(f"deepclust.{name}" for name in subpackages)],
    package_dir={"deepclust": "deepclust", **{f"deepclust.{folder}": folder for folder in FOLDERS}},
    package_data={"deepclust.app": ["web/static/*", "web/templates/*"]},
)
