r"""Build ``datasets/peptides_func/peptides_func.npz`` from the LRGB Peptides-func source table (offline, one-off).

Needs RDKit **2022.9.5** and OGB 1.3.6's ``smiles2graph`` (``ogb/utils/mol.py`` + ``ogb/utils/features.py``, e.g.
from the ``ogb==1.3.6`` wheel unpacked on ``PYTHONPATH``); numpy 1.x.  Users of ``dgl_hod`` do not need any of these:
the result ships in ``datasets/``.  Run it as a plain script (it does not import ``dgl_hod``)::

    PYTHONPATH=<unpacked ogb wheel> python dgl_hod/datasets/_build_peptides.py \\
        --csv peptide_multi_class_dataset.csv.gz --splits splits.json --out datasets/peptides_func/peptides_func.npz

``--check-ogb DIR`` instead rebuilds the OGB molecule sets whose ``smiles_labels.csv`` are in ``DIR/mol<name>/``
and compares them with the shipped ``datasets/ogbg/mol<name>/graphs.npz`` (validates the toolchain).

Output keys (packed layout, small dtypes to keep the file lean; the loader widens them to int64):
``node_feat`` uint8 (N, 9), ``edge_index`` int16 (2, E) local ids, ``edge_feat`` uint8 (E, 3), ``node_ptr``,
``edge_ptr`` int64 (G+1,), ``labels`` uint8 (G, 10), ``train``/``val``/``test`` int64 row indices.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import sys
import tempfile
import zipfile

import numpy as np


def featurise(smiles: list[str]):
    from ogb.utils.mol import smiles2graph

    nf, ei, ef, nn, ne = [], [], [], [], []
    for s in smiles:
        g = smiles2graph(s)
        nf.append(g["node_feat"])
        ei.append(g["edge_index"])
        ef.append(g["edge_feat"])
        nn.append(g["num_nodes"])
        ne.append(g["edge_index"].shape[1])
    return (
        np.concatenate(nf),
        np.concatenate(ei, axis=1),
        np.concatenate(ef),
        np.concatenate([[0], np.cumsum(nn)]),
        np.concatenate([[0], np.cumsum(ne)]),
    )


def _savez_deterministic(path: str, arrays: dict) -> None:
    """Compressed npz with fixed member timestamps (same content -> same bytes), written atomically."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(v), allow_pickle=False)
            info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    # the same steps as dgl_hod.utils.atomic_write, which this stand-alone script cannot import (dgl_hod needs dgl)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build(csv: str, splits: str, out: str) -> None:
    import pandas as pd

    df = pd.read_csv(csv)
    nf, ei, ef, node_ptr, edge_ptr = featurise(df["smiles"].tolist())
    labels = np.array([ast.literal_eval(x) for x in df["labels"]], dtype=np.uint8)
    sp = json.load(open(splits))
    assert nf.max() < 256 and ef.max() < 256 and np.diff(node_ptr).max() < 2**15
    _savez_deterministic(
        out,
        {
            "node_feat": nf.astype(np.uint8),
            "edge_index": ei.astype(np.int16),
            "edge_feat": ef.astype(np.uint8),
            "node_ptr": node_ptr.astype(np.int64),
            "edge_ptr": edge_ptr.astype(np.int64),
            "labels": labels,
            **{k: np.asarray(sp[k], dtype=np.int64) for k in ("train", "val", "test")},
        },
    )
    print(f"{out}: {len(df)} graphs, {node_ptr[-1]} nodes, {edge_ptr[-1]} directed edges")


def check_ogb(src: str, shipped: str) -> None:
    import pandas as pd

    for name in ("molesol", "molfreesolv", "molbace", "molbbbp"):
        df = pd.read_csv(os.path.join(src, name, "smiles_labels.csv"))
        nf, ei, ef, node_ptr, edge_ptr = featurise(df["smiles"].tolist())
        with np.load(os.path.join(shipped, name, "graphs.npz")) as z:
            same = all(
                np.array_equal(a, z[k])
                for a, k in (
                    (nf, "node_feat"),
                    (ei, "edge_index"),
                    (ef, "edge_feat"),
                    (node_ptr, "node_ptr"),
                    (edge_ptr, "edge_ptr"),
                )
            )
        print(f"{name}: {len(df)} graphs, identical to shipped graphs.npz: {same}")
        assert same


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv")
    ap.add_argument("--splits")
    ap.add_argument("--out")
    ap.add_argument("--check-ogb")
    ap.add_argument("--shipped", default="datasets/ogbg")
    a = ap.parse_args()
    import rdkit

    print("rdkit", rdkit.__version__, "numpy", np.__version__, file=sys.stderr)
    if a.check_ogb:
        check_ogb(a.check_ogb, a.shipped)
    else:
        build(a.csv, a.splits, a.out)
