"""Small helpers shared by the whole package: file hashing, atomic writes, "did you mean" hints.

One copy of each, so every cache, checkpoint, weights file and record is written the same safe way.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_bytes", "did_you_mean", "sha256_file"]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], mode: int | None = None) -> Path:
    """Write a file through ``write(f)`` so that ``path`` is either the old file or the complete new one.

    The data goes to a temporary file in the same folder, is fsynced and then ``os.replace``d over ``path``; on any
    error (an interrupt included) the temporary file is removed and ``path`` is untouched. ``mode`` sets the file's
    permission bits (e.g. ``0o644`` for shared weights).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
        >>> _ = atomic_write(p, lambda f: f.write(b"abc"))
        >>> p.read_bytes()
        b'abc'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    """:func:`atomic_write` of a bytes object."""
    return atomic_write(path, lambda f: f.write(data), mode=mode)


def did_you_mean(name: str, options: Iterable[str], cutoff: float = 0.5) -> str:
    """A " Did you mean 'a', 'b'?" hint (with a leading space) for an unknown ``name``, or "" if nothing is close.

    Example:
        >>> did_you_mean("gnie", ["gine", "gin", "ds-gnn"])
        " Did you mean 'gine', 'gin'?"
    """
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=cutoff)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
