r"""Molecules from SMILES: the OGB and ZINC featurisations of the shipped data, the scaffold split, :func:`from_smiles`.

RDKit is optional (``pip install 'dgl-hod[chem]'``, which pins ``rdkit==2022.9.5``: the version the shipped
ogbg-mol* and ZINC graphs were built with; newer RDKit versions pick other kekulé structures for a few molecules and
refuse some SMILES that 2022.9.5 reads).

* ``featurizer="ogb"``: OGB's ``smiles2graph`` (ogb 1.3.6): 9 atom columns with vocabularies
  ``(119, 5, 12, 12, 10, 6, 6, 2, 2)`` (atomic number - 1, chirality tag, total degree, formal charge + 5, total H,
  radical electrons, hybridisation, aromatic, in ring) and 3 bond columns ``(5, 6, 2)`` (bond type, stereo,
  conjugated); values outside a list map to its last ("misc") entry.  Each bond ``b`` gives edges ``2b`` (i->j)
  and ``2b+1`` (j->i).  This is the input of the ogbg-mol* zoo models (e.g. ``hod-gnn-k1-m2-molhiv``).
* ``featurizer="zinc"``: the ZINC-12k recipe (``datasets/zinc12k``): the molecule is written as a kekulé SMILES and
  re-read unsanitised; each atom becomes the token ``symbol[ H<n>][ +| -]`` (explicit H count, sign of the charge)
  and its id in the 28-token ``atom_dict.json``; bonds are 1 = single, 2 = double, 3 = triple.  The input of the
  ZINC zoo models (``gine-zinc``, ``hod-gnn-k2-zinc``, ...).  A token outside the vocabulary is an error.

Example:
    >>> from dgl_hod.datasets import from_smiles
    >>> import pandas as pd
    >>> df = pd.DataFrame({"smiles": ["CCO", "c1ccccc1", "CC(=O)O", "not a smiles"], "y": [0, 1, 0, 1]})
    >>> ds = from_smiles(df, "smiles", ["y"], task="binary", split=None)   # the invalid row is skipped
    >>> len(ds), ds.indices.tolist(), ds.skipped[0]["row"], ds[0][0].ndata["feat"].shape
    (3, [0, 1, 2], 3, torch.Size([3, 9]))
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..utils import did_you_mean
from ._store import verified_path
from .graphs import PackedGraphs
from .registry import OGB_ATOM_DIMS, OGB_BOND_DIMS
from .user import (
    UserDataError,
    UserGraphDataset,
    _check_frac,
    build_dataset,
    check_labels,
    random_split,
    splits_from_names,
    task_type,
)

__all__ = [
    "FEATURIZERS",
    "RDKIT_VERSION",
    "MoleculeError",
    "from_smiles",
    "ogb_graph",
    "zinc_graph",
    "zinc_vocabulary",
    "scaffold_split",
    "parse_smiles",
    "require_rdkit",
]

RDKIT_VERSION = "2022.9.5"  # the version the shipped molecule graphs were built with (pyproject's `chem` extra)
FEATURIZERS = ("ogb", "zinc")

# OGB 1.3.6 ogb/utils/features.py allowable_features (the last entry of each list is "misc")
_OGB_ATOM = (
    tuple(range(1, 119)) + ("misc",),
    ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER", "misc"),
    tuple(range(11)) + ("misc",),
    tuple(range(-5, 6)) + ("misc",),
    tuple(range(9)) + ("misc",),
    tuple(range(5)) + ("misc",),
    ("SP", "SP2", "SP3", "SP3D", "SP3D2", "misc"),
    (False, True),
    (False, True),
)
_OGB_BOND = (
    ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC", "misc"),
    ("STEREONONE", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS", "STEREOANY"),
    (False, True),
)
_OGB_ATOM_INDEX = tuple(MappingProxyType({v: i for i, v in enumerate(lst)}) for lst in _OGB_ATOM)
_OGB_BOND_INDEX = tuple(MappingProxyType({v: i for i, v in enumerate(lst)}) for lst in _OGB_BOND)
_ZINC_BONDS = MappingProxyType({"SINGLE": 1, "DOUBLE": 2, "TRIPLE": 3})


class MoleculeError(UserDataError):
    """A molecule cannot be featurised as asked (e.g. an atom outside the ZINC vocabulary); names the molecule."""


def require_rdkit() -> Any:
    """``rdkit.Chem``, or an ImportError that says how to install it."""
    try:
        from rdkit import Chem
    except ImportError:
        raise ImportError(
            "Molecules from SMILES need RDKit, an optional dependency: pip install 'dgl-hod[chem]' "
            f"(installs rdkit=={RDKIT_VERSION}, the version the shipped molecule graphs were built with). "
            "Graphs you build yourself need no RDKit: use dgl_hod.datasets.from_graphs"
        ) from None
    return Chem


@contextmanager
def _quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's own stderr messages (the reasons are collected and reported instead)."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


def parse_smiles(smiles: Any) -> tuple[Any, str]:
    """``(mol, "")`` for a valid SMILES (RDKit defaults, as OGB's ``smiles2graph``), else ``(None, reason)``."""
    Chem = require_rdkit()
    if not isinstance(smiles, str) or not smiles.strip():
        return None, "empty SMILES"
    with _quiet_rdkit():
        try:
            mol = Chem.MolFromSmiles(smiles)
        except Exception as err:  # RDKit raises for a few malformed inputs instead of returning None
            return None, f"RDKit could not read it: {err}"
        if mol is not None:
            if mol.GetNumAtoms() == 0:
                return None, "no atoms"
            return mol, ""
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        if raw is None:
            return None, "SMILES syntax error"
        try:
            Chem.SanitizeMol(raw)
        except Exception as err:
            return None, f"RDKit sanitisation failed: {str(err).strip()}"
    return None, "RDKit could not read it"


# --- OGB -----------------------------------------------------------------------------------------------------
def _ogb_index(table: MappingProxyType, value: Any) -> int:
    return table.get(value, len(table) - 1)  # unknown value -> the list's last ("misc") entry


def ogb_graph(mol: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OGB ``smiles2graph`` features of an RDKit molecule.

    Returns:
        ``node_feat`` (N, 9), ``edge_index`` (2, E) local ids with bond ``b`` as columns ``2b``, ``2b+1``, and
        ``edge_feat`` (E, 3); int64.  Chirality tags and bond stereo values that OGB's lists lack (newer RDKit
        tags, where ogb 1.3.6 itself would raise) map to the last entry.
    """
    a_num, a_chi, a_deg, a_chg, a_h, a_rad, a_hyb, a_aro, a_ring = _OGB_ATOM_INDEX
    x = np.array(
        [
            [
                _ogb_index(a_num, atom.GetAtomicNum()),
                _ogb_index(a_chi, str(atom.GetChiralTag())),
                _ogb_index(a_deg, atom.GetTotalDegree()),
                _ogb_index(a_chg, atom.GetFormalCharge()),
                _ogb_index(a_h, atom.GetTotalNumHs()),
                _ogb_index(a_rad, atom.GetNumRadicalElectrons()),
                _ogb_index(a_hyb, str(atom.GetHybridization())),
                _ogb_index(a_aro, atom.GetIsAromatic()),
                _ogb_index(a_ring, atom.IsInRing()),
            ]
            for atom in mol.GetAtoms()
        ],
        dtype=np.int64,
    ).reshape(-1, 9)
    b_type, b_stereo, b_conj = _OGB_BOND_INDEX
    edges, feats = [], []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        f = [
            _ogb_index(b_type, str(bond.GetBondType())),
            _ogb_index(b_stereo, str(bond.GetStereo())),
            _ogb_index(b_conj, bond.GetIsConjugated()),
        ]
        edges += [(i, j), (j, i)]
        feats += [f, f]
    ei = np.array(edges, dtype=np.int64).reshape(-1, 2).T.copy()
    return x, ei, np.array(feats, dtype=np.int64).reshape(-1, 3)


# --- ZINC ----------------------------------------------------------------------------------------------------
def zinc_vocabulary() -> tuple[str, ...]:
    """The 28 ZINC atom tokens, in id order (``datasets/zinc12k/atom_dict.json``)."""
    d = json.loads(verified_path("zinc12k/atom_dict.json").read_text())
    return tuple(d[str(i)] for i in range(len(d)))


def zinc_graph(mol: Any, vocab: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """ZINC-12k features of an RDKit molecule (parsed with default sanitisation).

    Returns:
        ``x`` (N,) atom token ids, ``edge_index`` (2, E) with bond ``b`` as columns ``2b``, ``2b+1``, ``edge_attr``
        (E,) bond ids 1/2/3, and the list of tokens that are not in ``vocab`` (their ids are -1; the caller
        refuses the molecule).

    Raises:
        MoleculeError: a bond that is not single, double or triple after kekulisation.
    """
    Chem = require_rdkit()
    index = {t: i for i, t in enumerate(vocab)}
    kek = Chem.MolFromSmiles(Chem.MolToSmiles(mol, kekuleSmiles=True, canonical=False), sanitize=False)
    x, oov = [], []
    for atom in kek.GetAtoms():
        tok = atom.GetSymbol()
        nh = atom.GetNumExplicitHs()
        if nh > 0:
            tok += f" H{nh}"
        charge = atom.GetFormalCharge()
        if charge > 0:
            tok += " +"
        elif charge < 0:
            tok += " -"
        if tok not in index:
            oov.append(f"{tok!r} (atom {atom.GetIdx()})")
        x.append(index.get(tok, -1))
    edges, attr = [], []
    for bond in kek.GetBonds():
        kind = str(bond.GetBondType())
        if kind not in _ZINC_BONDS:
            raise MoleculeError(
                f"bond {bond.GetIdx()} is {kind}; the ZINC featurisation knows single, double and triple bonds only"
            )
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        edges += [(i, j), (j, i)]
        attr += [_ZINC_BONDS[kind]] * 2
    ei = np.array(edges, dtype=np.int64).reshape(-1, 2).T.copy()
    return np.array(x, dtype=np.int64), ei, np.array(attr, dtype=np.int64), oov


# --- scaffold split ------------------------------------------------------------------------------------------
def scaffold_split(smiles: Sequence[str], frac: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """The deterministic Bemis–Murcko scaffold split of OGB / MoleculeNet (``pretrain-gnns`` ``scaffold_split``).

    Molecules are grouped by ``MurckoScaffoldSmiles(smiles=s, includeChirality=True)``; groups are taken largest
    first (ties: the group whose first molecule comes later goes first, as in the reference's
    ``sorted(..., key=(len, first index), reverse=True)``); a group goes to train unless train would exceed
    ``frac[0] * n``, then to valid unless train + valid would exceed ``(frac[0] + frac[1]) * n``, else to test.

    Args:
        smiles: the SMILES, in dataset order (all valid).
        frac: train / valid / test fractions.

    Returns:
        ``{"train", "valid", "test"}`` -> ascending positions into ``smiles``.
    """
    require_rdkit()
    from rdkit.Chem.Scaffolds import MurckoScaffold

    _check_frac(frac)
    groups: dict[str, list[int]] = {}
    with _quiet_rdkit():
        for i, s in enumerate(smiles):
            key = MurckoScaffold.MurckoScaffoldSmiles(smiles=s, includeChirality=True)
            groups.setdefault(key, []).append(i)
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[0]), reverse=True)
    n = len(smiles)
    train_cut, valid_cut = frac[0] * n, (frac[0] + frac[1]) * n
    out: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for g in ordered:
        if len(out["train"]) + len(g) > train_cut:
            if len(out["train"]) + len(out["valid"]) + len(g) > valid_cut:
                out["test"] += g
            else:
                out["valid"] += g
        else:
            out["train"] += g
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in out.items()}


# --- from_smiles ---------------------------------------------------------------------------------------------
def read_table(data: Any) -> tuple[Any, str]:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True), "a DataFrame"
    path = Path(os.fspath(data))
    if not path.is_file():
        raise FileNotFoundError(f"molecule table {path} does not exist; give a CSV file or a pandas DataFrame")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise UserDataError(f"{path} is not a readable CSV table ({err}); first line = column names") from None
    return df, str(path)


def _column(df: Any, col: str, where: str, role: str) -> Any:
    if col not in df.columns:
        names = [str(c) for c in df.columns]
        same_case = [c for c in names if c.lower() == str(col).lower()]
        hint = f" Did you mean {same_case[0]!r}?" if same_case else did_you_mean(str(col), names)
        raise UserDataError(f"{where} has no {role} column {col!r}.{hint} Columns: {', '.join(map(str, df.columns))}")
    return df[col]


def _numeric_labels(df: Any, columns: Sequence[str], where: str) -> np.ndarray:
    import pandas as pd

    out = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        raw = _column(df, c, where, "label")
        if pd.api.types.is_numeric_dtype(raw.dtype):
            out[:, j] = raw.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        text = raw.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())
        empty = text.isin(["", "nan", "NaN", "NA", "N/A", "null", "None"])
        num = pd.to_numeric(text.where(~empty, None), errors="coerce")
        bad = num.isna() & ~empty
        if bad.any():
            rows = np.nonzero(bad.to_numpy())[0]
            shown = ", ".join(f"row {r} = {raw.iloc[r]!r}" for r in rows[:5])
            raise UserDataError(
                f"label column {c!r} of {where} holds values that are not numbers: {shown}"
                f"{f' and {len(rows) - 5} more' if len(rows) > 5 else ''}. Labels are numbers; leave a cell empty "
                f"for a missing label"
            )
        out[:, j] = num.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def from_smiles(
    data: Any,
    smiles_column: str = "smiles",
    label_columns: Sequence[str] | str | None = None,
    task: str | None = None,
    *,
    featurizer: str = "ogb",
    split: str | None = "scaffold",
    frac: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    invalid: str = "skip",
    metric: str | None = None,
    num_classes: int | None = None,
    name: str | None = None,
    skipped_path: str | os.PathLike | None = None,
) -> UserGraphDataset:
    r"""A :class:`~dgl_hod.datasets.user.UserGraphDataset` of molecules from a table of SMILES and labels.

    Args:
        data: a CSV path (``.tsv``: tab-separated) or a pandas DataFrame; one molecule per row.
        smiles_column: the column holding the SMILES.
        label_columns: the label column(s), one task each; an empty cell = missing label (NaN).  ``None`` or ``[]``
            for molecules without labels (prediction only; ``ds.labels`` is then ``(G, 0)``).
        task: ``"binary"`` (labels 0/1), ``"regression"`` or ``"multiclass"`` (one column of class ids); needed
            with labels.
        featurizer: ``"ogb"`` (OGB ``smiles2graph``; ogbg-mol* models) or ``"zinc"`` (ZINC-12k tokens; ZINC models).
        split: ``"scaffold"`` (Bemis–Murcko, as OGB), ``"random"`` (seeded), the name of a column holding
            ``train`` / ``valid`` (``val``) / ``test`` per row, or ``None`` (no split).  Computed over the valid
            molecules, in input order.
        frac: split fractions (train, valid, test).
        seed: the random split's seed.
        invalid: ``"skip"`` (leave unreadable SMILES out; ``ds.skipped`` lists them, a warning gives the count,
            ``skipped_path`` gets them as CSV) or ``"error"`` (stop at the first one, naming it).
        metric: ``rocauc`` / ``ap`` (binary), ``rmse`` / ``mae`` (regression); default ``rocauc`` / ``rmse``.
        num_classes: for ``"multiclass"`` (default: largest id + 1).
        name: the dataset's name (default ``user-<file stem>``; ``register_dataset`` uses it).
        skipped_path: where to write the skipped rows (``row,smiles,reason``); written even when none is skipped.

    Returns:
        Every valid molecule in input order; ``ds.indices`` and the split views' ``.indices`` are input row
        positions (0-based, header excluded); ``ds.info`` holds task type, metric, vocabularies and split sizes.

    Raises:
        ImportError: RDKit is not installed (the message says how to install it).
        UserDataError: a missing column, labels that do not fit ``task``, an invalid SMILES with
            ``invalid="error"``, or (``MoleculeError``) atoms outside the ZINC vocabulary.
    """
    require_rdkit()
    if featurizer not in FEATURIZERS:
        raise UserDataError(f"featurizer must be one of {FEATURIZERS}, got {featurizer!r}")
    if invalid not in ("skip", "error"):
        raise UserDataError(f"invalid must be 'skip' or 'error', got {invalid!r}")
    df, where = read_table(data)
    columns = [label_columns] if isinstance(label_columns, str) else list(label_columns or [])
    if columns and task is None:
        raise UserDataError("give task='binary', 'regression' or 'multiclass' for the label columns")
    tt = task_type(task or "regression")
    smiles = _column(df, smiles_column, where, "SMILES").tolist()
    raw_labels = _numeric_labels(df, columns, where)
    split_col = None
    if isinstance(split, str) and split not in ("scaffold", "random"):
        split_col = _column(df, split, where, "split").tolist()
    elif split is not None and not isinstance(split, str):
        raise UserDataError(f"split must be 'scaffold', 'random', a column name or None, got {split!r}")

    vocab = zinc_vocabulary() if featurizer == "zinc" else ()
    rows, nums, edge_lists, nfs, efs, skipped, oov = [], [], [], [], [], [], []
    for r, s in enumerate(smiles):
        mol, reason = parse_smiles(s)
        if mol is None:
            if invalid == "error":
                raise UserDataError(
                    f"row {r} of {where}: SMILES {s!r} is invalid ({reason}). Fix or remove the row, or pass "
                    f"invalid='skip' to leave such rows out"
                )
            skipped.append({"row": r, "smiles": s, "reason": reason})
            continue
        if featurizer == "ogb":
            x, ei, ef = ogb_graph(mol)
        else:
            try:
                x, ei, ef, bad = zinc_graph(mol, vocab)
            except MoleculeError as err:
                raise MoleculeError(f"row {r} of {where}, SMILES {s!r}: {err}") from None
            if bad:
                oov.append(f"row {r} {s!r}: {', '.join(bad)}")
                continue
        rows.append(r)
        nums.append(x.shape[0])
        edge_lists.append(ei)
        nfs.append(x)
        efs.append(ef)
    if oov:
        raise MoleculeError(
            f"{len(oov)} molecule(s) of {where} have atoms outside the ZINC vocabulary (token = symbol, explicit H "
            f"count, charge sign): {'; '.join(oov[:5])}{' ...' if len(oov) > 5 else ''}. The ZINC vocabulary is "
            f"{list(vocab)}. A ZINC model cannot read these atoms: remove the molecules, or use featurizer='ogb' "
            f"with an ogbg-mol* model"
        )
    if not rows:
        raise UserDataError(f"no valid molecule in {where} ({len(skipped)} skipped, e.g. {skipped[:3]})")
    if skipped:
        import warnings

        warnings.warn(
            f"from_smiles: skipped {len(skipped)} of {len(smiles)} rows of {where} with invalid SMILES (first: row "
            f"{skipped[0]['row']} {skipped[0]['smiles']!r}: {skipped[0]['reason']}); ds.skipped lists them",
            stacklevel=2,
        )
    rows_arr = np.asarray(rows, dtype=np.int64)
    y = (
        check_labels(raw_labels[rows_arr], tt, len(rows), columns, rows_arr)
        if columns
        else np.zeros((len(rows), 0), np.float32)
    )

    valid_smiles = [smiles[r] for r in rows]
    if split is None:
        positions: dict[str, np.ndarray] = {}
    elif split == "scaffold":
        positions = scaffold_split(valid_smiles, frac)
    elif split == "random":
        positions = random_split(len(rows), frac, seed)
    else:
        positions = splits_from_names([split_col[r] for r in rows], rows_arr)  # type: ignore[index]
    packed = PackedGraphs.from_edge_lists(nums, edge_lists, y=y)
    packed = PackedGraphs(
        packed.node_ptr,
        packed.edge_ptr,
        packed.src,
        packed.dst,
        np.concatenate(nfs),
        np.concatenate(efs),
        packed.y,
    )
    if name is None:
        name = "user-" + (Path(where).stem.lower() if where != "a DataFrame" else "molecules")
    dims = (OGB_ATOM_DIMS, OGB_BOND_DIMS) if featurizer == "ogb" else ((len(vocab),), (4,))
    ds = build_dataset(
        packed,
        rows_arr,
        name=name,
        task=tt,
        metric=metric,
        columns=columns,
        split_positions=positions,
        node_vocab=dims[0],
        edge_vocab=dims[1],
        num_classes=num_classes,
        options={
            "featurizer": featurizer,
            "smiles_column": smiles_column,
            "split": split,
            "seed": seed,
            "frac": tuple(float(f) for f in frac),
            "invalid": invalid,
            "num_rows": len(smiles),
            "num_skipped": len(skipped),
            "rdkit": _rdkit_version(),
        },
        source=f"from_smiles({where})",
        skipped=skipped,
    )
    if skipped_path is not None:
        ds.write_skipped(skipped_path)
    return ds


def _rdkit_version() -> str:
    import rdkit

    return str(rdkit.__version__)
