"""Input encoders: categorical node/edge feature ids -> dense embeddings (the first stage of every model)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["CategoricalEncoder"]


class CategoricalEncoder(nn.Module):
    r"""Sum of one embedding per categorical column (OGB's ``AtomEncoder``/``BondEncoder`` pattern).

    .. math:: \mathrm{emb}(x) = \sum_{c} E_c[x_c]

    Args:
        vocab_sizes: vocabulary size of each column (e.g. ``DatasetInfo.node_feat_dims``); ``(1,)`` encodes
            featureless graphs (the constant-feature convention: ``feat`` = zeros).
        dim: embedding size.

    Shapes:
        - input: ``(N,)`` for one column or ``(N, F)`` for ``F`` columns, integer ids
        - output: ``(N, dim)``

    Example:
        >>> enc = CategoricalEncoder((28,), 8)
        >>> enc(torch.tensor([0, 5, 27])).shape
        torch.Size([3, 8])
    """

    def __init__(self, vocab_sizes: Sequence[int], dim: int):
        super().__init__()
        self.vocab_sizes = tuple(int(v) for v in vocab_sizes)
        if not self.vocab_sizes or min(self.vocab_sizes) < 1:
            raise ValueError(f"vocab_sizes must be a non-empty list of positive ints, got {vocab_sizes!r}")
        self.dim = dim
        self.embeddings = nn.ModuleList(nn.Embedding(v, dim) for v in self.vocab_sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for emb in self.embeddings:
            nn.init.xavier_uniform_(emb.weight)

    def forward(self, feat: Tensor) -> Tensor:
        if feat.is_floating_point():
            raise TypeError(f"expected integer category ids, got {feat.dtype}")
        cols = feat.unsqueeze(1) if feat.dim() == 1 else feat
        if cols.dim() != 2 or cols.shape[1] != len(self.vocab_sizes):
            raise ValueError(
                f"expected {len(self.vocab_sizes)} feature column(s) (vocab sizes {self.vocab_sizes}), "
                f"got ids of shape {tuple(feat.shape)}"
            )
        if len(cols) and ((cols < 0).any() or (cols >= torch.tensor(self.vocab_sizes, device=cols.device)).any()):
            bad = [
                c
                for c, v in enumerate(self.vocab_sizes)
                if len(cols) and (cols[:, c].max() >= v or cols[:, c].min() < 0)
            ]
            raise ValueError(f"category ids out of range in column(s) {bad}: vocab sizes are {self.vocab_sizes}")
        out = self.embeddings[0](cols[:, 0])
        for c in range(1, cols.shape[1]):
            out = out + self.embeddings[c](cols[:, c])
        return out

    def extra_repr(self) -> str:
        return f"vocab_sizes={self.vocab_sizes}, dim={self.dim}"
