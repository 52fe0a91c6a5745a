r"""HOD-GNN: High-Order Derivative GNN (Eitan et al., ICLR 2026), registered as ``"hod-gnn"``.

Pipeline, for a batch of graphs with ``N`` nodes and ``B`` graphs:

.. math::
    x_v &= \mathrm{Enc}_{node}(\text{ids}_v) \in \mathbb{R}^{D}, \qquad e_{wv} = \mathrm{Enc}_{edge}(\text{ids}_{wv}) \\
    h^{(T)}, \{D\} &= \mathrm{BaseMPNN.jets}_{k,m}(x + \textstyle\sum_j \epsilon_{\cdot,j} c_j,\ e)
        \quad (k = 1:\ D(\alpha)[v, u] = \partial^\alpha h^{(T)}_v / \partial\epsilon_u^\alpha,\ \alpha = 1..m) \\
    z_v &= W_{in}\big[\, x_v \,\|\, h^{(T)}_v \,\|\, \mathrm{DerivEnc}(\{D\})_v
        \,[\|\, U_{out}(D_{out})_v]\,[\|\, U_{layer}(\partial h^{(1..T)}_v/\partial\epsilon_v)] \big] \\
    z &= \mathrm{DownstreamGNN}(z, e), \qquad
    y_G = \mathrm{head}\big(\mathrm{READOUT}_{v \in G}\, z_v\big)

The derivative encoders (:mod:`dgl_hod.nn.derivative_encoders`) are equivariant IGN-style maps; the whole model is
invariant to node permutations and trained end to end (the jets are differentiable functions of the base MPNN's
weights).  ``k`` is the number of distinct marked nodes in a derivative and ``m`` the highest order in any one of
them (the paper's k-HOD-GNN with max order m; :class:`~dgl_hod.jets.Selection`); ``m=0`` drops the jets (base MPNN +
downstream GNN only): a 1-WL-bounded ablation.  Optional inputs (both off by default): the output derivatives
:math:`D_{out}(\alpha)[u] = \partial^\alpha h_{out} / \partial\epsilon_u^\alpha` of the base's read-out
(``output_derivatives``; the paper's ``U_out``) and the per-layer self-derivatives (``per_layer_derivatives``).
The older key ``order=K`` (every derivative of total order ``<= K``) means ``k=K, m=K, max_order=K``; ``order=0``
means ``m=0``.

Featureless graphs (``node_feat=None``): every node gets category id 0
(:func:`~dgl_hod.archs.base.constant_node_feat`); edges without features use GIN messages (``edge_vocab=None``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import dgl
import torch
from torch import Tensor

from .. import jets as jetlib
from ..nn.base_mpnn import DEFAULT_EPS, INITS, BaseMPNN, GraphJets
from ..nn.common import NORMS, mlp, task_head
from ..nn.derivative_encoders import (
    ENCODER_KINDS,
    JET_NORMS,
    TOTAL_ORDER_ENCODERS,
    DerivativeEncoder,
    LayerDerivativeEncoder,
    OutputDerivativeEncoder,
    output_derivatives,
)
from ..nn.downstream import DownstreamGNN
from ..nn.encoders import CategoricalEncoder
from .base import READOUTS, GraphConfig, GraphModel, readout
from .registry import register_arch

__all__ = ["HODGNN", "HODGNNConfig"]


@dataclass
class HODGNNConfig(GraphConfig):
    """Configuration of :class:`HODGNN` (all keys of ``create_model("hod-gnn", **config)``).

    Attributes:
        node_vocab: vocabulary size per categorical node-feature column (``(1,)`` for featureless graphs).
        edge_vocab: same for edges; ``None``: no edge features (GIN messages everywhere).
        num_tasks: outputs of the head.
        hidden_dim: width ``D`` of the input encoder and the downstream GNN.
        base_hidden_dim: width ``C`` of the base MPNN (the jets hold ``r*C`` channels per entry).
        base_layers: base depth ``T``.
        k: most distinct marked nodes per derivative (the paper's ``k``; default 1).
        m: highest derivative order in any one node (the paper's ``m``; default 1; 0 = no derivatives).
        max_order: cap on the total derivative order (``None``: ``k * m``).
        order: older spelling: ``order=K`` is ``k=K, m=K, max_order=K`` (every derivative of total order ``<= K``),
            ``order=0`` is ``m=0``; exclusive with ``k``/``m``/``max_order``.  Normalised to ``None`` after mapping.
        num_marks: marking directions ``r``.
        base_activation: activation of the base MPNN (must be smooth for total order >= 2 to be informative:
            ``silu``).
        activation: deprecated alias of ``base_activation`` (normalised to ``None``).
        base_aggregation: ``"sum"`` or ``"mean"``.
        base_init: ``"default"``, ``"rwse"`` (the paper's RWSE starting point: ``D1[v, v, j, 0]`` is the
            ``T``-step random-walk return probability at initialisation, the base stays a nonlinear trainable MPNN;
            the node encoder's channel 0 starts at 0) or ``"rwse-linear"`` (the earlier, linear variant); see
            :class:`~dgl_hod.nn.base_mpnn.BaseMPNN`.
        base_eps: initial GIN epsilon of every base layer (learned).  ``None`` (normalised on
            construction): :data:`~dgl_hod.nn.base_mpnn.DEFAULT_EPS` = 0.5 for ``base_init="default"``, -1 for the
            RWSE inits.  0.0, the value before 2026-12, puts a fresh base on a symmetry (two-fold isomorphic
            looped graphs tie at even depth; docs/paper-model.md, "Initialisation"); stored configs that predate the
            key (the zoo's older entries) get 0.0 back through ``LEGACY_DEFAULTS``.  It only shapes fresh weights:
            loaded weights carry their own learned ``eps``.
        jet_mode: ``"sparse"`` (default: only T-hop receptive fields; measured faster on ZINC-12k training steps at
            every order and depth) or ``"dense"`` (per graph, padded to the largest graph of the batch).
        jet_norm: ``"rms"`` (default), ``"asinh"`` or ``"none"`` (:mod:`dgl_hod.nn.derivative_encoders`).
        encoder_hidden_dim: width of the derivative encoders' ``phi`` MLPs (default ``hidden_dim``).
        global_pool: global term in the order-1 encoder.
        deriv_encoder: ``"per-order"`` (default: one encoder per derivative order, each normalised on its own) or
            ``"joint"`` (``k = 1``: the joint Taylor encoder, which sees ``D(1)[v,u] .. D(m)[v,u]`` of each pair
            together with one per-graph scale shared by all orders;
            :func:`~dgl_hod.nn.derivative_encoders.taylor_rows`).
        output_derivatives: add ``U_out(D_out)_u``, a DeepSets encoding of the output derivatives
            ``d^alpha h_out / d eps_u^alpha``, ``alpha = 1..m``, of the base's graph
            read-out (``readout`` of :math:`h^{(T)}`) to each node's features
            (:func:`~dgl_hod.nn.derivative_encoders.output_derivatives`,
            :class:`~dgl_hod.nn.derivative_encoders.OutputDerivativeEncoder`).  ``k = 1`` only.  Default off
            (the zoo's entries have none).
        per_layer_derivatives: add an MLP encoding of the first-order self-derivatives
            ``d h_v^(t) / d eps_v`` of every base layer ``t = 1..T``
            (:class:`~dgl_hod.nn.derivative_encoders.LayerDerivativeEncoder`).  Default off.
        downstream_layers: layers of the downstream GNN.
        downstream_norm: ``"batch"``, ``"layer"`` or ``"none"``.
        readout: ``"sum"`` or ``"mean"``.
        dropout: dropout in the downstream GNN and head.
    """

    base_hidden_dim: int = 32
    base_layers: int = 4
    k: int | None = None
    m: int | None = None
    max_order: int | None = None
    order: int | None = None
    num_marks: int = 1
    base_activation: str = "silu"
    activation: str | None = None
    base_aggregation: str = "sum"
    base_init: str = "default"
    base_eps: float | None = None
    jet_mode: str = "sparse"
    jet_norm: str = "rms"
    encoder_hidden_dim: int | None = None
    global_pool: bool = True
    deriv_encoder: str = "per-order"
    output_derivatives: bool = False
    per_layer_derivatives: bool = False
    downstream_layers: int = 4
    downstream_norm: str = "batch"
    readout: str = "sum"
    dropout: float = 0.0

    error_prefix = "hod-gnn: "

    LEGACY_DEFAULTS: ClassVar[dict[str, Any]] = {"base_eps": 0.0}
    """Values of keys added after a stored config (zoo entry, run record) was written: a stored config that lacks
    such a key gets the value that reproduces the behaviour it was written with (``base_eps``: the old init 0.0).
    A config given to ``create_model`` directly gets the normal defaults."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.activation is not None:
            if self.base_activation not in ("silu", self.activation):
                self._fail(
                    f"activation={self.activation!r} and base_activation={self.base_activation!r} disagree; "
                    f"give only base_activation (activation is its deprecated alias)"
                )
            warnings.warn(
                "hod-gnn: config key 'activation' is deprecated, use 'base_activation' (the base MPNN's "
                "activation); the value is taken as base_activation",
                DeprecationWarning,
                stacklevel=3,
            )
            self.base_activation, self.activation = self.activation, None
        if self.order is not None:
            if self.k is not None or self.m is not None or self.max_order is not None:
                self._fail(
                    f"give either order={self.order!r} or k/m/max_order, not both (order=K means k=K, m=K, "
                    f"max_order=K; order=0 means m=0)"
                )
            order = self.order
            if not isinstance(order, int) or isinstance(order, bool) or not 0 <= order <= jetlib.MAX_ORDER:
                self._fail(f"order must be an int in 0..{jetlib.MAX_ORDER} (0 = no derivatives), got {order!r}")
            self.k, self.m, self.max_order = (1, 0, None) if order == 0 else (order, order, order)
            self.order = None
        if self.base_eps is None:
            self.base_eps = DEFAULT_EPS if self.base_init == "default" else -1.0
        if self.k is None:
            self.k = 1
        if self.m is None:
            self.m = 1

    def selection(self) -> jetlib.Selection | None:
        """The derivatives the model computes (``None`` for ``m=0``)."""
        return None if self.m == 0 else jetlib.Selection(self.k, self.m, self.max_order)  # type: ignore[arg-type]

    def validate(self) -> None:
        self.check_int("num_tasks", "hidden_dim", "base_hidden_dim", "base_layers", "num_marks")
        self.check_int("downstream_layers", minimum=0)
        self.check_int("k")
        self.check_int("m", minimum=0)
        if self.max_order is not None:
            self.check_int("max_order")
        try:
            selection = self.selection()
            if selection is not None and not selection.is_pure and selection.total > len(TOTAL_ORDER_ENCODERS):
                self._fail(
                    f"k={self.k}, m={self.m} reaches total order {selection.total}, but the derivative encoders "
                    f"for k >= 2 read total orders <= {len(TOTAL_ORDER_ENCODERS)}; set max_order <= "
                    f"{len(TOTAL_ORDER_ENCODERS)}, or use k=1 (pure derivatives, m up to {jetlib.MAX_ORDER})"
                )
        except ValueError as err:
            if str(err).startswith(self.error_prefix):
                raise
            self._fail(str(err))
        if self.encoder_hidden_dim is not None:
            self.check_int("encoder_hidden_dim")
        self.check_vocabs()
        self.check_choices(
            (
                ("base_activation", jetlib.ACTIVATIONS),
                ("base_aggregation", ("sum", "mean")),
                ("base_init", INITS),
                ("jet_mode", ("dense", "sparse")),
                ("jet_norm", JET_NORMS),
                ("deriv_encoder", ENCODER_KINDS),
                ("downstream_norm", NORMS),
                ("readout", READOUTS),
            )
        )
        total = selection.total if selection is not None else 0
        eps = self.base_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
            self._fail(f"base_eps must be a finite float, got {eps!r}")
        if self.base_init != "default" and eps != -1.0:
            self._fail(
                f"base_init={self.base_init!r} needs base_eps = -1 (no self term: the random walk moves at every "
                f"step), got {eps!r}; leave base_eps unset"
            )
        if self.base_activation in ("relu", "identity") and total >= 2 and self.base_init != "rwse-linear":
            self._fail(
                f"base_activation {self.base_activation!r} has zero second derivative, so every derivative of "
                f"total order >= 2 (k={self.k}, m={self.m}) would be identically zero; use a smooth activation "
                f"such as 'silu', or m=1 with k=1"
            )
        if self.deriv_encoder == "joint" and (selection is None or not selection.is_pure):
            self._fail(
                f"deriv_encoder='joint' reads the pure derivatives D(1..m) of k=1, but the model has k={self.k}, "
                f"m={self.m}; use k=1 with m >= 1, or deriv_encoder='per-order'"
            )
        for key in ("output_derivatives", "per_layer_derivatives"):
            if not isinstance(getattr(self, key), bool):
                self._fail(f"{key} must be true or false, got {getattr(self, key)!r}")
            if getattr(self, key) and selection is None:
                self._fail(f"{key}=True needs derivatives, but m=0; use m >= 1 or {key}=False")
        if self.output_derivatives and selection is not None and not selection.is_pure:
            self._fail(
                f"output_derivatives=True is implemented for k=1 only (for k >= 2 the mixed output derivatives are a "
                f"tensor over tuples of marked nodes that needs a k-IGN encoder), but k={self.k}; use k=1, or "
                f"output_derivatives=False"
            )
        self.check_dropout()


@register_arch("hod-gnn", HODGNNConfig)
class HODGNN(GraphModel):
    r"""HOD-GNN (module docstring): input encoder -> base MPNN jets -> derivative encoders -> downstream GNN ->
    readout -> head.

    Build with ``create_model("hod-gnn", k=1, m=3, base_layers=4, ...)`` or ``HODGNN(HODGNNConfig(...))``.

    Shapes:
        - ``g``: batched DGLGraph with ``N`` nodes, ``E`` edges, ``B`` graphs.
        - ``node_feat``: ``(N,)`` or ``(N, F)`` int64 category ids, or ``None`` (constant features).
        - ``edge_feat``: ``(E,)`` or ``(E, F_e)`` int64 ids (required when ``edge_vocab`` is set).
        - ``forward`` -> ``(B, num_tasks)``; ``embed`` -> ``(B, hidden_dim)``; ``node_embed`` -> ``(N, hidden_dim)``.

    Example:
        >>> import dgl, torch
        >>> from dgl_hod import create_model
        >>> model = create_model("hod-gnn", k=1, m=2, edge_vocab=None, node_vocab=(1,), hidden_dim=16,
        ...                      base_hidden_dim=8, base_layers=2, downstream_layers=1)
        >>> g = dgl.graph(([0, 1, 2, 1, 2, 0], [1, 2, 0, 0, 1, 2]))
        >>> model.eval()(g, None).shape
        torch.Size([1, 1])
    """

    config: HODGNNConfig

    def __init__(self, config: HODGNNConfig):
        super().__init__()
        self.config = c = config
        D = c.hidden_dim
        self.node_encoder = CategoricalEncoder(c.node_vocab, D)
        self.edge_encoder = CategoricalEncoder(c.edge_vocab, D) if c.edge_vocab is not None else None
        edge_dim = D if c.edge_vocab is not None else None
        self.base = BaseMPNN(
            D,
            c.base_hidden_dim,
            c.base_layers,
            edge_dim=edge_dim,
            activation=c.base_activation,
            num_marks=c.num_marks,
            aggregation=c.base_aggregation,
            init=c.base_init,
            eps=c.base_eps,
        )
        enc_in = c.num_marks * c.base_hidden_dim
        enc_hidden = c.encoder_hidden_dim or D
        self.selection = c.selection()
        self.deriv_encoder = (
            DerivativeEncoder(
                self.selection,
                enc_in,
                enc_hidden,
                D,
                activation="silu",
                jet_norm=c.jet_norm,
                global_pool=c.global_pool,
                kind=c.deriv_encoder,
            )
            if self.selection is not None
            else None
        )
        self.output_encoder = (
            OutputDerivativeEncoder(
                self.selection.total, enc_in, enc_hidden, D, "silu", jet_norm=c.jet_norm, global_pool=c.global_pool
            )
            if c.output_derivatives and self.selection is not None
            else None
        )
        self.layer_encoder = (
            LayerDerivativeEncoder(c.base_layers, enc_in, enc_hidden, D, "silu", jet_norm=c.jet_norm)
            if c.per_layer_derivatives
            else None
        )
        combined = D + c.base_hidden_dim + (self.deriv_encoder.out_dim if self.deriv_encoder else 0)
        combined += sum(enc.out_dim for enc in (self.output_encoder, self.layer_encoder) if enc is not None)
        self.combine = mlp(combined, D, D)
        self.downstream = DownstreamGNN(
            D,
            c.downstream_layers,
            use_edges=c.edge_vocab is not None,
            activation="silu",
            norm=c.downstream_norm,
            dropout=c.dropout,
        )
        self.head = task_head(D, c.num_tasks, "silu", c.dropout)
        self._init_rwse_input()

    # -- stages -------------------------------------------------------------------------------------------------------
    def jets(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> GraphJets:
        """The base MPNN's raw (un-normalised) jets of the model's selection (``k=1, m=1`` when ``m=0``)."""
        x, e = self.encode_inputs(g, node_feat, edge_feat)
        return self.jets_of_inputs(g, x, e)

    def jets_of_inputs(self, g: dgl.DGLGraph, x: Tensor, e: Tensor | None) -> GraphJets:
        """The jets of encoded inputs ``x``, ``e`` (what :meth:`node_embed` reads)."""
        sel = self.selection or jetlib.Selection(1, 1)
        return self.base.jets(
            g,
            x,
            e,
            k=sel.k,
            m=sel.m,
            max_order=sel.max_order,
            mode=self.config.jet_mode,
            layer_diagonals=self.config.per_layer_derivatives,
        )

    def node_embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        """Node embeddings ``(N, hidden_dim)`` after the downstream GNN."""
        x, e = self.encode_inputs(g, node_feat, edge_feat)
        if self.deriv_encoder is None:
            h = self.base(g, x, e)
            z = torch.cat([x, h], 1)
        else:
            jets = self.jets_of_inputs(g, x, e)
            feats = [x, jets.h, self.deriv_encoder(jets)]
            if self.output_encoder is not None:
                d_out = output_derivatives(jets, self.config.readout)
                feats.append(self.output_encoder(d_out, jets.layout.graph_sizes))
            if self.layer_encoder is not None:
                feats.append(self.layer_encoder(jets))
            z = torch.cat(feats, 1)
        return self.downstream(g, self.combine(z), e)

    def embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        """Graph embeddings ``(B, hidden_dim)``: the read-out of :meth:`node_embed`."""
        return readout(g, self.node_embed(g, node_feat, edge_feat), self.config.readout)

    def _init_rwse_input(self) -> None:
        """``base_init="rwse"``: channel 0 of the node embedding starts at 0 for every category (the value at which
        the base's random-walk channel is wired; :meth:`BaseMPNN._init_rwse_channel`).
        """
        if self.config.base_init == "rwse":
            with torch.no_grad():
                for emb in self.node_encoder.embeddings:
                    emb.weight[:, 0] = 0.0

    def reset_parameters(self) -> None:
        modules = (
            self.node_encoder,
            self.edge_encoder,
            self.base,
            self.deriv_encoder,
            self.output_encoder,
            self.layer_encoder,
            self.downstream,
        )
        for m in modules:
            if m is not None:
                m.reset_parameters()
        for seq in (self.combine, self.head):
            for m in seq.children():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        self._init_rwse_input()

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"k={c.k}, m={c.m}, max_order={c.max_order}, base_layers={c.base_layers}, num_marks={c.num_marks}, "
            f"jet_mode={c.jet_mode}, "
            f"jet_norm={c.jet_norm}, readout={c.readout}, output_derivatives={c.output_derivatives}, "
            f"per_layer_derivatives={c.per_layer_derivatives}"
        )
