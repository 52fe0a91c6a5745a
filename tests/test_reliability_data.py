"""Reliability of the data layer (issue 11): content-verified files, a checksummed counting cache, clear index errors.

Each test fails on the code before the fix: the loader trusted a verdict keyed on (path, size, mtime) stored in
``verified.json``, ``verify`` reused it, an edited ``counting`` cache loaded silently, ``ds.batch([-1])`` raised
"index ... is out of bounds" while ``ds[-1]`` worked.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
import torch

from dgl_hod.datasets import DatasetFileError, _store, load_dataset
from dgl_hod.datasets import counting as counting_module
from dgl_hod.datasets.__main__ import main as datasets_main

MUTAG_LABELS = "tu/MUTAG/MUTAG_node_labels.txt"


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A private copy of the shipped MUTAG files and SHA256SUMS (restricted to them), with its own cache folder."""
    root = tmp_path / "data"
    src = _store.data_root()
    shutil.copytree(src / "tu" / "MUTAG", root / "tu" / "MUTAG")
    shutil.copytree(src / "tu" / "splits", root / "tu" / "splits")
    keep = ("tu/MUTAG/", "tu/splits/")
    sums = [
        line for line in (src / "SHA256SUMS").read_text().splitlines() if line.split()[-1].lstrip("*").startswith(keep)
    ]
    (root / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    monkeypatch.setenv("DGL_HOD_DATA", str(root))
    monkeypatch.setenv("DGL_HOD_CACHE", str(tmp_path / "cache"))
    return root


def flip_byte_keep_size_and_mtime(path) -> None:
    """Bit rot as ``cp -p`` / ``rsync -a`` would carry it: one label changes, size and mtime stay."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    pos = data.index(b"0")  # a node label '0' becomes '2' (same length)
    data[pos] = ord("2")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_changed_byte_with_size_and_mtime_restored_is_caught_by_load_and_verify(data_copy, capsys):
    assert len(load_dataset("mutag")) == 188  # verified (and, before the fix, the verdict was cached on disk)
    flip_byte_keep_size_and_mtime(data_copy / MUTAG_LABELS)
    # a new process starts without verdicts (none is read from disk): simulated here without the import cost
    _store._VERIFIED.clear()
    with pytest.raises(DatasetFileError, match=r"MUTAG_node_labels\.txt is corrupt.*git checkout"):
        _store.verified_path(MUTAG_LABELS)
    # verify always re-hashes, whatever this process saw before
    assert datasets_main(["verify"]) == 1
    err = capsys.readouterr().err
    assert "1 of " in err and "MUTAG_node_labels.txt" in err and "sha256" in err


def test_verify_rehashes_even_after_a_verified_load(data_copy, capsys):
    assert datasets_main(["verify"]) == 0
    assert "verified (sha256 of their content" in capsys.readouterr().out
    load_dataset("mutag")  # everything verified in this process
    flip_byte_keep_size_and_mtime(data_copy / MUTAG_LABELS)
    assert datasets_main(["verify"]) == 1


# --- the generated counting cache ---------------------------------------------------------------------------------


@pytest.fixture
def small_counting(tmp_path, monkeypatch):
    monkeypatch.setenv("DGL_HOD_CACHE", str(tmp_path))
    monkeypatch.setattr(counting_module, "NUM_GRAPHS", 30)
    monkeypatch.setattr(counting_module, "SPLIT_SIZES", (10, 10, 10))
    counting_module.counting_packed.cache_clear()
    yield tmp_path / "counting-v1-seed3.npz"
    counting_module.counting_packed.cache_clear()


def _edit_cache(path, fix_digest: bool) -> None:
    with np.load(path, allow_pickle=False) as f:
        z = {k: f[k] for k in f.files}
    z["counts"] = z["counts"].copy()
    z["counts"][0, 0] += 7
    if fix_digest:  # a careful edit that also rewrites the stored digest
        z.pop("sha256")
        z["sha256"] = np.array(counting_module.content_sha256(z))
    np.savez_compressed(path, **z)


def test_edited_counting_cache_is_detected_and_rebuilt(small_counting):
    full, _ = counting_module.counting_packed(seed=3)
    _edit_cache(small_counting, fix_digest=False)
    counting_module.counting_packed.cache_clear()
    with pytest.warns(UserWarning, match="counting cache .* was edited"):
        again, _ = counting_module.counting_packed(seed=3)
    assert np.array_equal(again.extras["counts"], full.extras["counts"])
    counting_module.counting_packed.cache_clear()  # the rebuilt cache is intact again: no warning
    counting_module.counting_packed(seed=3)


def test_counting_cache_with_a_rewritten_digest_fails_the_recorded_digest(small_counting, monkeypatch):
    full, _ = counting_module.counting_packed(seed=3)
    with np.load(small_counting, allow_pickle=False) as f:
        recorded = str(f["sha256"])
    monkeypatch.setitem(counting_module.KNOWN_SHA256, 3, recorded)  # as seed 0's digest is recorded in the code
    _edit_cache(small_counting, fix_digest=True)
    counting_module.counting_packed.cache_clear()
    with pytest.warns(UserWarning, match="content checksum mismatch"):
        again, _ = counting_module.counting_packed(seed=3)
    assert np.array_equal(again.extras["counts"], full.extras["counts"])
    # a generator that no longer gives the recorded data is refused, not silently cached
    monkeypatch.setitem(counting_module.KNOWN_SHA256, 3, "0" * 64)
    small_counting.unlink()
    counting_module.counting_packed.cache_clear()
    with pytest.raises(DatasetFileError, match="seed 3 has content sha256 .* expected 0000"):
        counting_module.counting_packed(seed=3)


def test_the_recorded_seed0_digest_matches_the_generator():
    """Seed 0 loads under the recorded digest (from the cache, or freshly generated and checked against it)."""
    full, splits = counting_module.counting_packed(seed=0)
    assert counting_module.KNOWN_SHA256[0] and len(full.y) == 5000 and len(splits["test"]) == 2500
    nums, edges = counting_module.generate_graphs(seed=0, num_graphs=3)
    assert [int(n) for n in np.diff(full.node_ptr)[:3]] == nums
    assert np.array_equal(full.extras["counts"][2], counting_module.count_substructures(nums[2], edges[2]))


# --- indices ------------------------------------------------------------------------------------------------------


def test_batch_accepts_negative_indices_like_getitem():
    ds = load_dataset("zinc12k", "val")
    g, y = ds.batch([-1, 0, -1000])
    for k, i in enumerate([-1, 0, -1000]):
        gi, yi = ds[i]
        assert torch.equal(dgl_graph_feats(g, k), gi.ndata["feat"]) and torch.equal(y[k].reshape(-1), yi.reshape(-1))
    assert torch.equal(ds.batch(torch.tensor([-2]))[1], ds.batch([998])[1])
    assert len(ds.subset([-1])) == 1 and ds.subset([-1]).indices[0] == ds.indices[-1]
    assert ds.batch(np.arange(1000) < 3)[0].batch_size == 3  # a boolean mask selects


def dgl_graph_feats(g, k: int) -> torch.Tensor:
    nn = g.batch_num_nodes()
    start = int(nn[:k].sum())
    return g.ndata["feat"][start : start + int(nn[k])]


@pytest.mark.parametrize("bad", [[1000], [-1001], [3, 5000]])
def test_out_of_range_indices_name_the_index_and_the_size(bad):
    ds = load_dataset("zinc12k", "val")
    culprit = next(i for i in bad if not -1000 <= i < 1000)
    with pytest.raises(IndexError, match=rf"zinc12k\[val\] has 1000 graphs; index {culprit} is out of range"):
        ds.batch(bad)
    with pytest.raises(IndexError, match=rf"index {culprit} is out of range"):
        ds.subset(bad)
    with pytest.raises(IndexError, match=r"has 1000 graphs; index 1000 is out of range"):
        ds[1000]


def test_non_integer_indices_are_refused():
    ds = load_dataset("zinc12k", "val")
    with pytest.raises(TypeError, match="graph indices must be integers"):
        ds.batch([0.5])
    with pytest.raises(TypeError, match="boolean mask .* needs 1000 entries, got 2"):
        ds.batch([True, False])


@pytest.mark.parametrize("fold", [1.7, "1", True])
def test_fold_must_be_an_int(fold):
    """``--fold 1.7`` used to be read as fold 1."""
    with pytest.raises(ValueError, match=r"pass an int fold=0..9 .*got fold="):
        load_dataset("mutag", "train", fold=fold)
    assert len(load_dataset("mutag", "train", fold=np.int64(1))) == len(load_dataset("mutag", "train", fold=1))


def test_hashing_every_shipped_file_is_cheap():
    """Content hashing on first use is affordable: all ~13 MB in well under a second (0.05 s measured; 2 s bound)."""
    start = time.perf_counter()
    checked = _store.verify_all()
    seconds = time.perf_counter() - start
    assert len(checked) >= 40 and seconds < 2.0, seconds
