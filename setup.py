"""Packages for setuptools: edgeseg's, plus the top-level calibration/ shipped as edgeseg/calibration/.

The default calibration set lives beside edgeseg/, tests/ and deploy/ in the repository;
a wheel carries it inside the package so `edgeseg convert --int8` without --calib works
from an install (tests/test_bundle_wheel.py checks the wheel's listing).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["edgeseg", "edgeseg.*"]), "edgeseg.calibration"],
    package_dir={"edgeseg.calibration": "calibration"},
)
