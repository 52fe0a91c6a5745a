"""Where the shipped data lives, content verification and atomic cache writes.

* Data root: ``$DGL_HOD_DATA`` if set, else the repository's top-level ``datasets/`` folder.
* Cache dir: ``$DGL_HOD_CACHE`` if set, else ``~/.cache/dgl_hod`` (generated data only, e.g. ``counting``).

Every shipped file is listed in ``<data root>/SHA256SUMS``.  :func:`verified_path` hashes a file's content the first
time the file is used in each process and compares it with that list; no verdict is carried from one process to the
next (a verdict keyed on path, size and mtime would trust a file whose bytes changed under a restored mtime: bit rot,
``cp -p``, ``rsync -a``).  Hashing all ~13 MB of shipped data takes well under a second.  Within a process a file is
hashed again whenever its size or mtime changes.  :func:`verify_all` (``python -m dgl_hod.datasets verify``) always
re-hashes every listed file.  Nothing here downloads anything.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..resources import shipped_root
from ..utils import atomic_write_bytes, sha256_file

__all__ = ["DatasetFileError", "atomic_save_npz", "cache_dir", "data_root", "verified_path", "verify_all"]

_REPO_DATA = shipped_root() / "datasets"  # the checkout's datasets/, or the copy inside an installed wheel
_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime_ns) whose content was hashed in this process


class DatasetFileError(RuntimeError):
    """A shipped data file is missing, truncated or corrupt (the message names the file and the fix)."""


def data_root() -> Path:
    """The folder holding the shipped data and its ``SHA256SUMS``."""
    return Path(os.environ.get("DGL_HOD_DATA") or _REPO_DATA)


def cache_dir() -> Path:
    """The folder for generated data (``$DGL_HOD_CACHE``, default ``~/.cache/dgl_hod``)."""
    return Path(os.environ.get("DGL_HOD_CACHE") or Path.home() / ".cache" / "dgl_hod")


def _fix(rel: str) -> str:
    root = data_root()
    return (
        f"Fix: restore the shipped copy (in a git checkout: `git checkout -- datasets/{rel}`), or point "
        f"DGL_HOD_DATA at a folder holding intact copies; check a folder with `cd {root} && sha256sum -c SHA256SUMS`."
    )


def _manifest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from ``root/SHA256SUMS`` (``sha256sum`` format)."""
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        raise DatasetFileError(
            f"Checksum list {sums} is missing, so no dataset file can be verified. {_fix('SHA256SUMS')}"
        )
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            out[rel.lstrip("*")] = digest.lower()
    return out


def _check(root: Path, rel: str, expected: str | None) -> Path:
    """Hash ``root/rel`` and compare with ``expected``; record the verdict for this process."""
    path = root / rel
    if not path.is_file():
        raise DatasetFileError(f"Dataset file {path} is missing. {_fix(rel)}")
    if expected is None:
        raise DatasetFileError(f"Dataset file {path} is not listed in {root / 'SHA256SUMS'}. {_fix(rel)}")
    st = path.stat()
    actual = sha256_file(path)
    if actual != expected:
        raise DatasetFileError(
            f"Dataset file {path} is corrupt or truncated: sha256 {actual} ({st.st_size} bytes), expected "
            f"{expected}. {_fix(rel)}"
        )
    _VERIFIED.add((str(path.resolve()), st.st_size, st.st_mtime_ns))
    return path


def verified_path(rel: str) -> Path:
    """Absolute path of shipped file ``rel`` (relative to the data root), after checking its sha256.

    The content is hashed on the file's first use in this process (and again if its size or mtime changes).

    Raises:
        DatasetFileError: the file is missing, not listed in ``SHA256SUMS``, or its content differs.
    """
    root = data_root()
    path = root / rel
    if path.is_file():
        st = path.stat()
        if (str(path.resolve()), st.st_size, st.st_mtime_ns) in _VERIFIED:
            return path
    return _check(root, rel, _manifest(root).get(rel))


def verify_all() -> list[str]:
    """Re-hash every file listed in ``SHA256SUMS`` (no verdict is reused); returns the relative paths checked.

    Raises:
        DatasetFileError: naming every missing or corrupt file.
    """
    root = data_root()
    manifest = _manifest(root)
    bad = []
    for rel in sorted(manifest):
        try:
            _check(root, rel, manifest[rel])
        except DatasetFileError as err:
            bad.append(str(err).split(". Fix:")[0])
    if bad:
        raise DatasetFileError(f"{len(bad)} of {len(manifest)} files failed: " + "; ".join(bad) + f". {_fix('...')}")
    return sorted(manifest)


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` to ``path`` atomically (no half-written file survives an interrupt)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
