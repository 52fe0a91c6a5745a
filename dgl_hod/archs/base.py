"""The contract shared by every architecture of the zoo (HOD-GNN and the baselines)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import dgl
import torch
from torch import Tensor, nn

__all__ = ["ConfigChecks", "GraphConfig", "GraphModel", "constant_node_feat", "readout"]

READOUTS = ("sum", "mean")


def readout(g: dgl.DGLGraph, h: Tensor, op: str) -> Tensor:
    """Graph embeddings ``(B, D)`` from node embeddings ``(N, D)`` (sum or mean over each graph's nodes)."""
    if op not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {op!r}")
    with g.local_scope():
        g.ndata["_h"] = h
        return dgl.readout_nodes(g, "_h", op=op)


def constant_node_feat(g: dgl.DGLGraph) -> Tensor:
    """The constant-feature convention for featureless graphs: category id 0 for every node (vocab size 1)."""
    return torch.zeros(g.num_nodes(), dtype=torch.long, device=g.device)


class ConfigChecks:
    """Validation shared by the architecture config dataclasses (mixed into each of them).

    ``error_prefix`` (a class attribute, e.g. ``"hod-gnn: "``) starts every message.
    """

    error_prefix = ""

    def __post_init__(self):
        # JSON round trips give lists: normalise the vocabularies to tuples
        for name in ("node_vocab", "edge_vocab"):
            if isinstance(getattr(self, name, None), list):
                setattr(self, name, tuple(getattr(self, name)))

    def _fail(self, message: str):
        raise ValueError(f"{self.error_prefix}{message}")

    def check_int(self, *names: str, minimum: int = 1) -> None:
        for name in names:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                self._fail(f"{name} must be an int >= {minimum}, got {v!r}")

    def check_choices(self, checks) -> None:
        for name, options in checks:
            if getattr(self, name) not in options:
                self._fail(f"{name} must be one of {tuple(options)}, got {getattr(self, name)!r}")

    def check_vocabs(self) -> None:
        """``node_vocab`` a non-empty tuple of positive ints; ``edge_vocab`` the same or ``None``."""
        for name in ("node_vocab", "edge_vocab"):
            vocab = getattr(self, name)
            if vocab is None and name == "edge_vocab":
                continue
            if not isinstance(vocab, tuple) or not vocab or not all(isinstance(v, int) and v >= 1 for v in vocab):
                self._fail(
                    f"{name} must be a non-empty tuple of positive ints (vocabulary size per feature "
                    f"column, e.g. get_info(name).node_feat_dims), got {vocab!r}"
                )

    def check_dropout(self) -> None:
        dropout = getattr(self, "dropout", None)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
            self._fail(f"dropout must be in [0, 1), got {dropout!r}")


@dataclass
class GraphConfig(ConfigChecks):
    """The config fields every architecture shares (input vocabularies, task count, width); subclasses add theirs."""

    node_vocab: tuple[int, ...] = (28,)
    edge_vocab: tuple[int, ...] | None = (4,)
    num_tasks: int = 1
    hidden_dim: int = 64


class GraphModel(nn.Module):
    """Base class: ``forward(g, node_feat, edge_feat=None) -> (B, num_tasks)`` and ``embed(...) -> (B, D)``.

    Subclasses set ``self.config`` (their config dataclass) and ``self.head`` (the task head, whose parameters are
    named ``head.*``: the zoo drops exactly those when ``num_tasks`` changes), and implement :meth:`embed`.
    ``node_feat=None`` means featureless graphs (:func:`constant_node_feat`) and needs ``node_vocab=(1,)``.
    """

    head: nn.Module
    config: GraphConfig
    node_encoder: nn.Module
    edge_encoder: nn.Module | None  # None: the model uses no edge features

    def encode_inputs(
        self, g: dgl.DGLGraph, node_feat: Tensor | None, edge_feat: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """``(N, D)`` node and ``(E, D)`` edge embeddings (``None`` when the model uses no edge features).

        One rule for every architecture: missing features are never filled with id 0 behind the user's back, since
        that gives confident predictions for the wrong molecule.  ``node_feat=None`` (featureless graphs) is
        accepted only by a model built with ``node_vocab=(1,)``, where id 0 is the only id; a model with an edge
        encoder needs ``edge_feat``.

        Raises:
            ValueError: ``node_feat=None`` on a model with another node vocabulary, or ``edge_feat=None`` on a
                model with an edge vocabulary.
        """
        if node_feat is None:
            if tuple(self.config.node_vocab) != (1,):
                raise ValueError(
                    f"{self.config.error_prefix}this model was built with node_vocab={tuple(self.config.node_vocab)} "
                    f"and needs node_feat (N,) or (N, F) category ids (e.g. g.ndata['feat']); node_feat=None "
                    f"(featureless graphs) needs a model built with node_vocab=(1,)"
                )
            node_feat = constant_node_feat(g)
        x = self.node_encoder(node_feat)
        if self.edge_encoder is None:
            return x, None
        if edge_feat is None:
            raise ValueError(
                f"{self.config.error_prefix}this model was built with edge_vocab="
                f"{self.config.edge_vocab} and needs edge_feat (E,) category ids; build it with "
                f"edge_vocab=None for graphs without edge features"
            )
        return x, self.edge_encoder(edge_feat)

    def embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        return self.head(self.embed(g, node_feat, edge_feat))

    def reset_parameters(self) -> None:
        """Re-initialise every submodule once: the outermost ``reset_parameters`` of each branch wins (so a
        module's own special init, e.g. BaseMPNN's ``rwse``, is not undone by its children's defaults).
        """

        def visit(module: nn.Module) -> None:
            for child in module.children():
                if hasattr(child, "reset_parameters"):
                    child.reset_parameters()
                else:
                    visit(child)

        visit(self)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)
