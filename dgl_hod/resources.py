"""Where the shipped files live: ``zoo.yaml``, ``models/`` and ``datasets/``, in a checkout or an installed wheel.

A source checkout keeps them at the top level of the repository (next to ``dgl_hod/``).  A wheel cannot install
files there, so the build (``setup.py``'s ``build_py``) copies them into the package as ``dgl_hod/_shipped/``;
:func:`shipped_root` returns that folder when it exists and the checkout root otherwise.  The environment
variables ``DGL_HOD_ZOO``, ``DGL_HOD_MODELS`` and ``DGL_HOD_DATA`` still override each location.

Example:
    >>> (shipped_root() / "zoo.yaml").name
    'zoo.yaml'
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE_DIR", "SHIPPED_DIRNAME", "in_checkout", "shipped_root"]

PACKAGE_DIR = Path(__file__).resolve().parent
#: the folder, inside the installed package, that holds the copies made at build time
SHIPPED_DIRNAME = "_shipped"


def shipped_root() -> Path:
    """The folder holding ``zoo.yaml``, ``models/`` and ``datasets/``: the installed copy, else the checkout root."""
    installed = PACKAGE_DIR / SHIPPED_DIRNAME
    if (installed / "zoo.yaml").is_file():
        return installed
    return PACKAGE_DIR.parent


def in_checkout() -> bool:
    """Whether this ``dgl_hod`` runs from a source checkout (``benchmarks/`` and ``pyproject.toml`` next to it)."""
    root = PACKAGE_DIR.parent
    return (root / "pyproject.toml").is_file() and (root / "benchmarks").is_dir()
