"""Where the shipped data lives, checksum verification and atomic cache writes.

* Data root: ``$DGL_HOD_DATA`` if set, else the repository's top-level ``datasets/`` folder.
* Cache dir: ``$DGL_HOD_CACHE`` if set, else ``~/.cache/dgl_hod``.

Every shipped file is listed in ``<data root>/SHA256SUMS``.  :func:`verified_path` checks a file's sha256 the first
time it is used and remembers the verdict (keyed by absolute path, size and mtime) in memory and in
``<cache dir>/verified.json``, so the hash is not recomputed on every load.  Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["DatasetFileError", "data_root", "cache_dir", "verified_path", "atomic_write_bytes", "atomic_save_npz"]

_REPO_DATA = Path(__file__).resolve().parents[2] / "datasets"
_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime_ns) verified in this process


class DatasetFileError(RuntimeError):
    """A shipped data file is missing, truncated or corrupt (the message names the file and the fix)."""


def data_root() -> Path:
    return Path(os.environ.get("DGL_HOD_DATA") or _REPO_DATA)


def cache_dir() -> Path:
    return Path(os.environ.get("DGL_HOD_CACHE") or Path.home() / ".cache" / "dgl_hod")


def _fix(rel: str) -> str:
    root = data_root()
    return (
        f"Fix: restore the shipped copy (in a git checkout: `git checkout -- datasets/{rel}`), or point "
        f"DGL_HOD_DATA at a folder holding intact copies; check a folder with `cd {root} && sha256sum -c SHA256SUMS`."
    )


def _manifest(root: Path) -> dict[str, str]:
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_verdicts() -> dict:
    try:
        return json.loads((cache_dir() / "verified.json").read_text())
    except (OSError, ValueError):
        return {}


def verified_path(rel: str) -> Path:
    """Absolute path of shipped file ``rel`` (relative to the data root), after checking its sha256."""
    root = data_root()
    path = root / rel
    if not path.is_file():
        raise DatasetFileError(f"Dataset file {path} is missing. {_fix(rel)}")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return path
    expected = _manifest(root).get(rel)
    if expected is None:
        raise DatasetFileError(f"Dataset file {path} is not listed in {root / 'SHA256SUMS'}. {_fix(rel)}")
    verdicts = _load_verdicts()
    seen = verdicts.get(key[0])
    if not (
        seen
        and seen.get("size") == st.st_size
        and seen.get("mtime_ns") == st.st_mtime_ns
        and seen.get("sha256") == expected
    ):
        actual = sha256_file(path)
        if actual != expected:
            raise DatasetFileError(
                f"Dataset file {path} is corrupt or truncated: sha256 {actual} ({st.st_size} bytes), expected "
                f"{expected}. {_fix(rel)}"
            )
        verdicts[key[0]] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}
        try:
            atomic_write_bytes(cache_dir() / "verified.json", json.dumps(verdicts, indent=0).encode())
        except OSError:
            pass  # a read-only cache only costs re-hashing next time
    _VERIFIED.add(key)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_save_npz(path: Path, **arrays) -> None:
    """``np.savez_compressed`` to ``path`` atomically (no half-written file survives an interrupt)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
