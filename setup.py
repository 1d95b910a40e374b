"""Package list for setuptools; all other metadata is in pyproject.toml.

`kernels_cu/` and `widgets/` sit at the top of the source tree and are mapped into the wheel as the data
packages `workbench._kernels_cu` and `workbench._widgets`.
"""
from setuptools import find_packages, setup

DATA_PACKAGES = {"workbench._kernels_cu": "kernels_cu", "workbench._widgets": "widgets"}

setup(
    packages=find_packages(include=["workbench", "workbench.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
)
