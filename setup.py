"""Build step of the wheel: copy the shipped files (zoo.yaml, models/, datasets/) into the package.

A source checkout keeps ``zoo.yaml``, ``models/`` and ``datasets/`` at the top level (the product card documents that
layout).  A wheel can only install files inside packages, so ``build_py`` copies them to ``dgl_hod/_shipped/`` in the
build folder (never into the source tree); :func:`dgl_hod.resources.shipped_root` finds them there once installed.
Editable installs skip the copy: they read the checkout itself.  Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("zoo.yaml", "models", "datasets")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".gitkeep", "*.tmp", ".*.tmp")


class BuildPyWithShippedFiles(build_py):
    """``build_py`` that also copies zoo.yaml, models/ and datasets/ into ``dgl_hod/_shipped/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "dgl_hod" / "_shipped"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in SHIPPED:
            src = HERE / name
            if not src.exists():
                raise FileNotFoundError(f"{src} is missing: build the wheel from a complete checkout")
            if src.is_dir():
                shutil.copytree(src, target / name, ignore=SKIP)
            else:
                shutil.copy2(src, target / name)


setup(cmdclass={"build_py": BuildPyWithShippedFiles})
