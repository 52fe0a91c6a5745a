"""``dgl-hod report``: the zoo in pictures -- training curves, accuracy against cost, and a Markdown page.

Everything is read from the registry (``zoo.yaml``) and the per-epoch history files it binds by sha256
(``models/NAME.history.json``, written by ``dgl-hod package``; see ``docs/zoo.md``), so the page can be regenerated
from the repository alone:

* ``curves-{dataset}.png``: validation (solid) and test (dashed) metric of every zoo model of a dataset against
  the epoch and against wall-clock time since the run started, one line per seed (the shipped seed drawn
  strongest, its best-validation epoch marked);
* ``cost-zinc12k.png``: test MAE (mean ± std over seeds) of every ZINC-12k model against seconds per epoch, and
  against peak memory where a run recorded it;
* the page (default ``docs/results.md``): a table from zoo.yaml (metric, seeds, epochs, s/epoch, wall time, peak
  memory, history) embedding the PNGs; an entry without history says "no history recorded", and one whose history
  file fails its checks (:meth:`dgl_hod.zoo.Zoo.read_history`) is named with the reason and not drawn.

Files are written atomically, PNGs with matplotlib's Agg renderer at fixed settings (matplotlib's defaults, not
the user's ``matplotlibrc``; no timestamp or version in the PNG metadata), so the same inputs give the same bytes.

Example:
    >>> from dgl_hod.report import write_report
    >>> result = write_report(out="docs/results.md", png_dir="docs/img")  # doctest: +SKIP
    >>> result.problems                                                   # doctest: +SKIP
    []
"""

from __future__ import annotations

import io
import math
import os
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .utils import atomic_write_bytes
from .zoo import HistoryError, Zoo, ZooEntry, default_zoo

__all__ = [
    "COST_DATASET",
    "GOALS",
    "Goal",
    "ModelHistory",
    "PROTOCOL_RECIPE",
    "Report",
    "collect",
    "curve_trend",
    "goal_rows",
    "plateau",
    "plot_cost",
    "protocol_differences",
    "plot_curves",
    "render_page",
    "write_report",
]

#: the dataset of the accuracy-against-cost chart
COST_DATASET = "zinc12k"

#: the issue-14 protocol's recipe (``benchmarks/zoo_protocol.sh``; a test checks the two agree): an entry is
#: "trained under the protocol" when its recipe has exactly these values and no time budget
PROTOCOL_EPOCHS = 300
PROTOCOL_RECIPE: dict[str, Any] = {
    "epochs_requested": PROTOCOL_EPOCHS,
    "time_budget_s": None,
    "warmup_epochs": 5,
    "lr": 1e-3,
    "weight_decay": 1e-5,
    "batch_size": 32,
    "loss": "L1",
}
#: the "still falling" rule: the tail is the last ``max(TAIL_MIN_EPOCHS, ceil(TAIL_FRACTION * epochs))`` epochs
TAIL_FRACTION = 0.1
TAIL_MIN_EPOCHS = 5
#: a validation curve has reached its plateau at the first epoch whose best-so-far value is within this fraction of
#: the run's best value (:func:`plateau`)
PLATEAU_TOLERANCE = 0.02
#: a training loss that falls by more than this fraction over the plateau: the model still fits the training set
#: better while validation stays put
OVERFIT_LOSS_DROP = 0.2


@dataclass(frozen=True)
class Goal:
    """One row of the goal table: a ZINC-12k zoo entry, its target test MAE and the published reference value.

    ``published`` is a reference only (it is never written into zoo.yaml): the value as the cited source gives it,
    ``None`` where there is none. ``goal`` is the target for the mean test MAE over seeds (``None``: report only).
    """

    model: str
    goal: float | None
    stretch: float | None = None
    published: str | None = None
    source: str = ""


_NOTES = "paper notes"
#: issue 14's goals (ZINC-12k test MAE, measured from the shipped weights); the one place they are written down
GOALS: tuple[Goal, ...] = (
    Goal("hod-gnn-k2-zinc", 0.10, source="none (the paper reports 2-HOD on BREC only)"),
    Goal(
        "hod-gnn-k1-m2-zinc",
        0.10,
        stretch=0.08,
        published="0.0666 ± 0.0035",
        source=f"HOD-GNN paper, 1-HOD (k = 1), 2000 epochs, 4 seeds; {_NOTES} §5.2 [S1-S3]",
    ),
    Goal(
        "hod-gnn-k1-m2-d8-zinc",
        0.10,
        stretch=0.08,
        published="0.0666 ± 0.0035",
        source=f"the same 1-HOD row (no separate value for a deeper base); {_NOTES} §5.2",
    ),
    Goal(
        "dss-gnn-zinc",
        0.117,
        published="0.102",
        source=f"issue 14 (ESAN, ego-nets+); no DSS-GNN row in the {_NOTES}",
    ),
    Goal(
        "ds-gnn-zinc",
        0.133,
        published="0.116",
        source=f"issue 14 (ESAN, ego-nets+); no DS-GNN row in the {_NOTES}",
    ),
    Goal(
        "gine-zinc",
        0.187,
        published="0.163",
        source=f'the HOD-GNN paper\'s "GIN" row, {_NOTES} §5.2 [S3]; issue 14 uses it for GINE',
    ),
    Goal("gine-rwse-zinc", None, source="none"),
)
#: resolution of every PNG (pixels per inch); the figures are 11 x 4.2 inches
DPI = 90
#: (label, marker, colour) per architecture family in the cost chart: derivative, subgraph and message-passing GNNs
_FAMILY = {
    "hod-gnn": ("HOD-GNN", "o", "tab:red"),
    "ds-gnn": ("subgraph GNN", "s", "tab:blue"),
    "dss-gnn": ("subgraph GNN", "s", "tab:blue"),
}
_MPNN = ("MPNN baseline", "^", "tab:green")
_SPLIT_STYLE = {"val": "-", "test": "--"}
_MEMORY_HOW = (
    "the trainer's `record.json` would need a peak-memory field: `timing.peak_rss_mib`, the training process's peak "
    "resident set in MiB (`resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024` on Linux, the maximum over "
    "ranks for data-parallel runs), which `dgl-hod package` copies into the entry's `recipe.peak_rss_mib`"
)


@dataclass
class ModelHistory:
    """One zoo entry and its checked per-epoch history (``None`` when it has none or it was refused)."""

    entry: ZooEntry
    history: dict[str, Any] | None = None
    problem: str | None = None  # why the history exists but is not drawn (a failed check)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def metric(self) -> str:
        return str(self.entry.metrics.get("test", {}).get("metric", ""))

    @property
    def shipped_seed(self) -> int | None:
        """The seed whose weights the entry ships (``None`` when the entry does not record it)."""
        seed = self.entry.metrics.get("test", {}).get("weights_seed")
        return None if seed is None else int(seed)

    def shipped_run(self) -> dict[str, Any] | None:
        """The history's run of the shipped seed (its first run when the entry does not name one)."""
        runs = self.history["runs"] if self.history else []
        return next((r for r in runs if r["seed"] == self.shipped_seed), runs[0] if runs else None)

    @property
    def peak_rss_mib(self) -> float | None:
        """Peak resident memory of the shipped seed's run: the recipe's, else the largest in its history."""
        peak = self.entry.recipe.get("peak_rss_mib")
        run = self.shipped_run()
        if peak is None and run is not None:
            values = [r["peak_rss_mib"] for r in run["epochs"] if r.get("peak_rss_mib")]
            peak = max(values) if values else None
        return None if peak is None else float(peak)


@dataclass
class Report:
    """What :func:`write_report` wrote: the page, the PNGs, and the histories it refused (``name: reason``)."""

    page: Path
    images: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def collect(zoo: Zoo | None = None) -> list[ModelHistory]:
    """Every zoo entry (sorted by name) with its history read and checked by :meth:`Zoo.read_history`."""
    zoo = zoo or default_zoo()
    out = []
    for name in zoo.list_models():
        try:
            out.append(ModelHistory(zoo.model_info(name), zoo.read_history(name)))
        except HistoryError as exc:
            out.append(ModelHistory(zoo.model_info(name), None, str(exc)))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------------------
@contextmanager
def _defaults() -> Iterator[None]:
    """Matplotlib's default style (not the user's matplotlibrc) for the duration of the block.

    pyparsing >= 3.3 warns about the old method names that matplotlib 3.8's mathtext (log-axis tick labels) calls;
    those deprecation warnings are silenced here only.
    """
    import matplotlib as mpl

    with mpl.rc_context(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(matplotlib|pyparsing)\.")
        mpl.rcdefaults()
        mpl.rcParams.update({"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "svg.hashsalt": "dgl-hod"})
        yield


def _new_figure(ncols: int) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * ncols, 4.2), dpi=DPI, layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _save_png(fig: Any, path: Path) -> Path:
    """Render ``fig`` with Agg into memory and write it atomically (no Software/date metadata: same bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue(), mode=0o644)
    return path


def _plain_log_axis(axis: Any, values: Sequence[float]) -> None:
    """Log scale with plain numbers as tick labels (0.2, 0.5, 1, 2: no ``10^x`` mathtext); within one decade every
    minor tick is labelled, over several only the 2s and 5s.
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    narrow = bool(finite) and max(finite) / min(finite) < 10

    def minor(v: float, _: Any) -> str:
        mantissa = round(v / 10 ** math.floor(math.log10(v)), 6) if v > 0 else 0
        return f"{v:g}" if narrow or mantissa in (2, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor) if finite else NullFormatter())


def _color(i: int) -> str:
    return f"C{i % 10}"


def _wall_unit(seconds: float) -> tuple[float, str]:
    return (3600.0, "hours") if seconds > 3 * 3600 else (60.0, "minutes")


def plot_curves(models: Sequence[ModelHistory], dataset: str, path: str | os.PathLike) -> Path:
    """Validation and test curves of ``dataset``'s models that have a history, against epoch and wall-clock.

    Left: metric against epoch; right: against wall-clock time since the run started (``wall_s`` of the history).
    One colour per model, solid = validation, dashed = test; the shipped seed is drawn strongest and its
    best-validation epoch (whose weights are shipped) is marked on the test curve. Error metrics (MAE, RMSE) use a
    log scale. Raises ``ValueError`` when no model of ``dataset`` has a history.
    """
    from matplotlib.lines import Line2D

    drawn = [m for m in models if m.entry.dataset == dataset and m.history]
    if not drawn:
        raise ValueError(f"no zoo model of {dataset} has a recorded history; nothing to draw")
    metric = drawn[0].metric
    higher = bool(drawn[0].history and drawn[0].history.get("higher_is_better"))
    runs = [r for m in drawn for r in (m.history or {}).get("runs", [])]
    longest = max(max((row["wall_s"] or 0.0) for row in r["epochs"]) for r in runs)
    scale, unit = _wall_unit(longest)
    with _defaults():
        fig, (ax_epoch, ax_wall) = _new_figure(2)
        handles = []
        ys_all: list[float] = []
        for i, m in enumerate(drawn):
            color = _color(i)
            assert m.history is not None
            shipped = m.shipped_run()
            for run in m.history["runs"]:
                rows = run["epochs"]
                strong = run is shipped  # the shipped seed bold, with its best epoch marked
                for split, style in _SPLIT_STYLE.items():
                    ys = [math.nan if r[split] is None else r[split] for r in rows]
                    ys_all += ys
                    kw = {"color": color, "ls": style, "lw": 1.5 if strong else 0.8, "alpha": 1.0 if strong else 0.45}
                    ax_epoch.plot([r["epoch"] for r in rows], ys, **kw)
                    ax_wall.plot([(r["wall_s"] or math.nan) / scale for r in rows], ys, **kw)
                if strong:
                    best = rows[int(run["best_epoch"]) - 1]
                    for ax, x in ((ax_epoch, best["epoch"]), (ax_wall, (best["wall_s"] or math.nan) / scale)):
                        ax.plot([x], [best["test"]], marker="o", ms=5, color=color, ls="none")
            seeds = len(m.history["runs"])
            handles.append(Line2D([], [], color=color, lw=1.5, label=f"{m.name} ({seeds} seed{'s' * (seeds > 1)})"))
        handles += [
            Line2D([], [], color="0.3", ls="-", label="validation"),
            Line2D([], [], color="0.3", ls="--", label="test"),
            Line2D([], [], color="0.3", marker="o", ls="none", label="test at best val (shipped)"),
        ]
        label = f"{metric.upper()} ({'higher' if higher else 'lower'} is better)"
        for ax, xlabel in ((ax_epoch, "epoch"), (ax_wall, f"wall-clock since start ({unit})")):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            if not higher:
                ax.set_yscale("log")
                _plain_log_axis(ax.yaxis, ys_all)
            ax.grid(True, which="both", alpha=0.3)
        from matplotlib.ticker import MaxNLocator

        ax_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_epoch.set_title(f"{dataset}: validation and test {metric.upper()} against epoch")
        ax_wall.set_title(f"{dataset}: against wall-clock time")
        fig.legend(handles=handles, loc="outside right upper")
        return _save_png(fig, Path(path))


def _family(arch: str) -> tuple[str, str, str]:
    return _FAMILY.get(arch, _MPNN)


def plot_cost(models: Sequence[ModelHistory], path: str | os.PathLike, dataset: str = COST_DATASET) -> Path:
    """Test metric of every ``dataset`` model against seconds per epoch (and against peak memory where recorded).

    One point per zoo entry: the test mean over seeds with a ± std bar, at the shipped seed's seconds per epoch
    (``recipe.seconds_per_epoch``, log scale); marker shape by family (HOD-GNN, subgraph GNN, MPNN baseline). A
    second panel plots the same metric against peak memory (``recipe.peak_rss_mib``) when at least one model
    recorded it. Raises ``ValueError`` when no model of ``dataset`` has a test metric and seconds per epoch.
    """
    from matplotlib.lines import Line2D

    from .datasets.evaluate import HIGHER_IS_BETTER

    points = {m.name: p for m in models if m.entry.dataset == dataset and (p := _cost_point(m)) is not None}
    if not points:
        raise ValueError(f"no zoo model of {dataset} records a test metric and seconds per epoch; nothing to draw")
    pts = [m for m in models if m.name in points]
    memory = {m.name: peak for m in pts if (peak := m.peak_rss_mib) is not None}
    metric = pts[0].metric
    better = "higher" if HIGHER_IS_BETTER.get(metric, False) else "lower"
    with _defaults():
        fig, axes = _new_figure(2 if memory else 1)
        panels = [(axes[0], {n: p[0] for n, p in points.items()}, "seconds per epoch (shipped seed, log scale)")]
        if memory:
            panels.append((axes[1], memory, "peak resident memory (MiB, log scale)"))
        for ax, xs, xlabel in panels:
            seen = []
            for m in pts:
                if m.name not in xs:
                    continue
                _, mean, std = points[m.name]
                fam, marker, color = _family(m.entry.arch)
                ax.errorbar(
                    [xs[m.name]],
                    [mean],
                    yerr=[[std], [std]] if std else None,
                    marker=marker,
                    ms=7,
                    color=color,
                    capsize=3,
                    ls="none",
                )
                ax.annotate(m.name, (xs[m.name], mean), xytext=(5, 4), textcoords="offset points", fontsize=7.5)
                seen += [(fam, marker, color)] if (fam, marker, color) not in seen else []
            ax.set_xscale("log")
            _plain_log_axis(ax.xaxis, list(xs.values()))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"test {metric.upper()} (mean ± std over seeds; {better} is better)")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlim(min(xs.values()) / 1.6, max(xs.values()) * 2.8)  # room for the names on the right
            ax.margins(y=0.12)
            ax.legend(
                handles=[Line2D([], [], color=c, marker=mk, ls="none", label=fam) for fam, mk, c in sorted(seen)],
                loc="best",
            )
        axes[0].set_title(f"{dataset}: test {metric.upper()} against training cost")
        if memory:
            axes[1].set_title(f"{dataset}: against peak memory ({len(memory)} of {len(pts)} models recorded)")
        return _save_png(fig, Path(path))


def _cost_point(m: ModelHistory) -> tuple[float, float, float] | None:
    """(seconds per epoch, test mean, test std or 0) of an entry, or ``None`` when one is not recorded."""
    test = m.entry.metrics.get("test", {})
    spe, mean = m.entry.recipe.get("seconds_per_epoch"), test.get("mean")
    if not isinstance(spe, (int, float)) or not isinstance(mean, (int, float)) or spe <= 0:
        return None
    std = test.get("std")
    return float(spe), float(mean), float(std) if isinstance(std, (int, float)) else 0.0


# ---------------------------------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------------------------------
def _value(entry: ZooEntry, split: str) -> str:
    m = entry.metrics.get(split, {})
    mean, std = m.get("mean"), m.get("std")
    if not isinstance(mean, (int, float)):
        return ""
    text = f"{m.get('metric', '')} {mean:.4f}"
    return text + (f" ± {std:.4f}" if isinstance(std, (int, float)) and m.get("num_seeds", 1) > 1 else "")


# ---------------------------------------------------------------------------------------------------------------------
# goals (issue 14): protocol check and the "still falling" rule
# ---------------------------------------------------------------------------------------------------------------------
def protocol_differences(entry: ZooEntry) -> list[str]:
    """How ``entry``'s recipe differs from :data:`PROTOCOL_RECIPE` (``[]``: trained under the protocol).

    Example:
        >>> import dataclasses
        >>> from dgl_hod.zoo import ZooEntry
        >>> e = ZooEntry("gine-zinc", "gine", {}, "zinc12k", "regression", "", "", 0, {},
        ...              {**PROTOCOL_RECIPE, "time_budget_s": 1200.0, "epochs_requested": None})
        >>> protocol_differences(e)
        ['no fixed epoch count', 'time budget 1200 s']
        >>> protocol_differences(dataclasses.replace(e, recipe={**PROTOCOL_RECIPE, "lr": 3e-3}))
        ['lr 0.003 (protocol 0.001)']
    """
    out = []
    recipe = entry.recipe
    for key, want in PROTOCOL_RECIPE.items():
        got = recipe.get(key)
        if key == "time_budget_s":
            if got is not None:
                out.append(f"time budget {got:g} s")
        elif key == "epochs_requested" and got is None:
            out.append("no fixed epoch count")
        elif key not in recipe:
            out.append(f"{key} not recorded")
        elif got != want:
            out.append(f"{key} {got} (protocol {want})")
    if len(out) > 1:  # older entries record fewer settings: their time budget already says enough
        out = [d for d in out if not d.endswith("not recorded")]
    return out


@dataclass(frozen=True)
class Trend:
    """The end of one validation curve: is it still falling (error metrics) / rising (higher is better)?"""

    epochs: int
    best_epoch: int
    tail: int  # epochs in the tail
    slope_per_10: float  # least-squares slope of the tail, relative to its mean value, per 10 epochs (-0.02: -2 %)
    improving: bool  # best epoch inside the tail and the tail's slope in the improving direction


def curve_trend(values: Sequence[float | None], higher_is_better: bool = False) -> Trend | None:
    """The "still falling" rule on one run's per-epoch validation values (``None``: a diverged epoch).

    The tail is the last ``max(5, ceil(0.1 * epochs))`` epochs; a run no longer than that has no verdict
    (``None``), nor has one with fewer than 2 finite values in the tail. The curve is **still improving** (for an error
    such as MAE: still falling) when both hold: the best validation epoch of the whole run lies in the tail, and the
    least-squares line through the tail's finite values slopes in the improving direction. The slope is reported
    relative to the tail's mean value, per 10 epochs.

    Example:
        >>> t = curve_trend([1.0 / (1 + e) for e in range(100)])   # 1/(1+e): falls to the end
        >>> (t.improving, t.tail, t.best_epoch, round(t.slope_per_10, 3))
        (True, 10, 100, -0.105)
        >>> curve_trend([1.0] * 50 + [0.5] * 50).improving          # flat since epoch 51: plateaued
        False
    """
    n = len(values)
    tail = min(n, max(TAIL_MIN_EPOCHS, math.ceil(TAIL_FRACTION * n)))
    points = [(i, float(v)) for i, v in enumerate(values) if i >= n - tail and v is not None and math.isfinite(v)]
    finite = [(i, float(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if tail >= n or len(points) < 2:
        return None
    sign = -1.0 if higher_is_better else 1.0
    best = min(finite, key=lambda iv: (sign * iv[1], iv[0]))  # the first best epoch on ties, as the trainer keeps
    xs, ys = [i for i, _ in points], [v for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    relative = 10 * slope / my if my else 0.0
    direction = relative > 0 if higher_is_better else relative < 0
    return Trend(n, best[0] + 1, tail, relative, bool(best[0] >= n - tail and direction))


@dataclass(frozen=True)
class Plateau:
    """Where one run's validation curve stopped improving, and what its training loss did from there on."""

    since: int  # 1-based: the first epoch whose best-so-far validation value is within the tolerance of the best
    epochs: int
    best: float
    best_epoch: int
    loss_since: float | None  # training loss at epoch ``since`` and at the last epoch (None: not recorded)
    loss_end: float | None


def plateau(
    rows: Sequence[dict[str, Any]], higher_is_better: bool = False, tolerance: float = PLATEAU_TOLERANCE
) -> Plateau | None:
    """The plateau of one run's history rows (``epoch``, ``val``, ``train_loss``; ``None`` without a finite val).

    ``since`` is the first epoch at which the best validation value so far is within ``tolerance`` (relative) of the
    run's best, so every later epoch improves the best by at most that much.

    Example:
        >>> rows = [{"epoch": e + 1, "val": 1.0 / (1 + e) + 0.5, "train_loss": 1.0 / (1 + e)} for e in range(100)]
        >>> p = plateau(rows)  # best 0.51 (epoch 100); 0.5 + 1/(1+e) <= 1.02 * 0.51 from e = 49, epoch 50
        >>> (p.since, p.best_epoch, round(p.best, 4), round(p.loss_since, 4), round(p.loss_end, 4))
        (50, 100, 0.51, 0.02, 0.01)
    """
    vals = [(i, float(r["val"])) for i, r in enumerate(rows) if r.get("val") is not None and math.isfinite(r["val"])]
    if not vals:
        return None
    sign = -1.0 if higher_is_better else 1.0
    best_i, best = min(vals, key=lambda iv: (sign * iv[1], iv[0]))
    limit = best * (1 - tolerance) if higher_is_better else best * (1 + tolerance)
    since = next(i for i, v in vals if (v >= limit if higher_is_better else v <= limit))

    def loss(i: int) -> float | None:
        v = rows[i].get("train_loss")
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    return Plateau(since + 1, len(rows), best, best_i + 1, loss(since), loss(len(rows) - 1))


def plateau_text(m: ModelHistory, goal: float | None = None) -> str | None:
    """One sentence on the shipped seed's curve: plateau or still falling, and the training loss over the plateau."""
    if not m.history or m.problem:
        return None
    higher = bool(m.history.get("higher_is_better"))
    metric = m.history.get("metric", "metric")
    run = m.shipped_run()
    if run is None:
        return None
    p = plateau(run["epochs"], higher)
    trend = curve_trend([r["val"] for r in run["epochs"]], higher)
    if p is None:
        return None
    text = (
        f"seed {run['seed']}: best validation {metric} {p.best:.4f} at epoch {p.best_epoch} of {p.epochs}, within "
        f"{PLATEAU_TOLERANCE:.0%} of it since epoch {p.since}"
    )
    if p.loss_since is not None and p.loss_end is not None and p.since < p.epochs:
        drop = 1 - p.loss_end / p.loss_since if p.loss_since else 0.0
        change = f"{-100 * drop:+.0f} %".replace("-", "−")
        text += (
            f"; over the {p.epochs - p.since} epochs after that the training loss went from {p.loss_since:.4f} to "
            f"{p.loss_end:.4f} ({change})"
        )
        if drop > OVERFIT_LOSS_DROP and not (trend and trend.improving):
            text += ": the model kept fitting the training set while validation stayed put (overfitting)"
    if trend is not None and trend.improving:
        text += ". The curve was still improving at the end: more epochs would likely improve it further"
    elif trend is not None:
        goal_text = f" to the goal ({_mae(goal)})" if goal is not None else ""
        text += f". The curve has plateaued: more epochs of this recipe would not close the gap{goal_text}"
    return text + "."


def _trend_cell(m: ModelHistory | None) -> str:
    """The goal table's "still falling" cell: the verdict over seeds, then the shipped seed's numbers."""
    if m is None:
        return "—"
    if m.problem:
        return "history refused"
    if not m.history:
        return "no history recorded"
    higher = bool(m.history.get("higher_is_better"))
    runs = m.history["runs"]
    trends = [(run["seed"], curve_trend([r["val"] for r in run["epochs"]], higher)) for run in runs]
    known = [(seed, t) for seed, t in trends if t is not None]
    if not known:
        return f"too few epochs ({len(runs[0]['epochs'])})"
    count = sum(t.improving for _, t in known)
    verdict = "yes" if count == len(known) else "no" if count == 0 else "partly"
    if len(known) > 1:
        verdict += f" ({count}/{len(known)} seeds)"
    seed, t = next(((s, t) for s, t in known if s == m.shipped_seed), known[0])
    slope = f"{100 * t.slope_per_10:+.1f}".replace("-", "−")
    return f"{verdict}; seed {seed}: best val at {t.best_epoch}/{t.epochs}, last {t.tail} epochs {slope} %/10 ep"


def _mae(value: float) -> str:
    """A goal as written in the issue: 0.10, 0.08, 0.117 (two decimals at least)."""
    text = f"{value:.3f}"
    return text[:-1] if text.endswith("0") else text


def goal_rows(models: Sequence[ModelHistory], goals: Sequence[Goal] = GOALS) -> list[dict[str, str]]:
    """One row per goal: the goal, the published reference, the measured zoo.yaml value and the curve's end."""
    by_name = {m.name: m for m in models}
    rows = []
    for g in goals:
        m = by_name.get(g.model)
        goal = "report" if g.goal is None else f"≤ {_mae(g.goal)}"
        goal += f" (stretch ≤ {_mae(g.stretch)})" if g.stretch is not None else ""
        row = {
            "model": f"`{g.model}`",
            "goal": goal,
            "published": g.published or "—",
            "source": g.source,
            "measured": "not in the zoo yet",
            "epochs": "—",
            "protocol": "—",
            "falling": _trend_cell(m),
            "status": "not packaged",
        }
        if m is not None:
            e, r = m.entry, m.entry.recipe
            test = e.metrics.get("test", {})
            seeds = test.get("num_seeds", 1)
            row["measured"] = (_value(e, "test").removeprefix(f"{test.get('metric', '')} ") or "—") + (
                f" ({seeds} seeds)" if seeds > 1 else ""
            )
            planned = r.get("epochs_requested") or r.get("planned_epochs") or "?"
            row["epochs"] = f"{r.get('epochs_run', '?')}/{planned}"
            diff = protocol_differences(e)
            row["protocol"] = "yes" if not diff else "no: " + ", ".join(diff)
            mean = test.get("mean")
            if diff:
                row["status"] = "not yet trained under the protocol"
            elif g.goal is None or not isinstance(mean, (int, float)):
                row["status"] = "reported"
            elif g.stretch is not None and mean <= g.stretch:
                row["status"] = "met, stretch too"
            elif mean <= g.goal:
                row["status"] = "met" + (f"; stretch missed by {mean - g.stretch:.4f}" if g.stretch is not None else "")
            else:
                row["status"] = f"missed by {mean - g.goal:.4f}"
        rows.append(row)
    return rows


def _goal_section(models: Sequence[ModelHistory]) -> list[str]:
    lines = [
        "## Goals (issue 14, ZINC-12k test MAE)",
        "",
        "The issue's goals for the ZINC models, against the zoo's measured values. **published** is a reference "
        "only, as the cited source gives it (papers train far longer: ZINC 2000 epochs in the HOD-GNN paper); it is "
        "never written into zoo.yaml. The paper notes are the project's notes on the HOD-GNN paper "
        "(`/work/shared/paper-notes.md`, compiled from secondary sources [S1-S9]; the paper's own text was not "
        "available). The goals and sources are `dgl_hod.report.GOALS`. **measured**: zoo.yaml's test MAE, mean "
        "± std over seeds, recomputed from the weights by `dgl-hod package`. **epochs**: run / planned (the "
        f"protocol plans E = {PROTOCOL_EPOCHS}). **protocol**: whether the recipe is the protocol's "
        "(`benchmarks/zoo_protocol.sh`: fixed E epochs, 5 warm-up, AdamW lr 1e-3, weight decay 1e-5, batch 32, "
        "L1, no time budget); a goal is judged only then. **still falling**: the validation curve's end, per seed: "
        f"yes when the best validation epoch lies in the last {TAIL_FRACTION:.0%} of the epochs (at least "
        f"{TAIL_MIN_EPOCHS}) and the least-squares slope over those epochs is negative (shown relative to their "
        "mean, per 10 epochs; `dgl_hod.report.curve_trend`).",
        "",
        "| model | goal | published (reference only) | source of the published value | measured test MAE | epochs "
        "| protocol | still falling at the end | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = goal_rows(models)
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['goal']} | {r['published']} | {r['source']} | {r['measured']} | {r['epochs']} | "
            f"{r['protocol']} | {r['falling']} | {r['status']} |"
        )
    by_name, goals = {m.name: m for m in models}, {g.model: g for g in GOALS}
    misses = []
    for r in rows:
        name = r["model"].strip("`")
        text = plateau_text(by_name[name], goals[name].goal) if r["status"].startswith("missed") else None
        if text:
            misses.append(f"- `{name}` ({r['status']}), {text}")
    if misses:
        lines += [
            "",
            "**The misses, read from their curves** (`dgl_hod.report.plateau`: the plateau starts at the first epoch "
            f"whose best-so-far validation value is within {PLATEAU_TOLERANCE:.0%} of the run's best; overfitting: the "
            f"training loss fell by more than {OVERFIT_LOSS_DROP:.0%} after that; docs/training.md discusses what each "
            "would take):",
            "",
            *misses,
        ]
    return [*lines, ""]


def _history_cell(m: ModelHistory) -> str:
    if m.problem:
        return "**refused** (see below)"
    if not m.history:
        return "no history recorded"
    epochs = [len(r["epochs"]) for r in m.history["runs"]]
    return f"{len(epochs)} seed{'s' * (len(epochs) > 1)}, {'/'.join(map(str, epochs))} epochs"


def _fmt(value: Any, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else "—"


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def planned_images(models: Sequence[ModelHistory]) -> dict[str, str]:
    """The PNG file names the report draws for these models: ``{"curves-DATASET" | "cost-DATASET": file name}``."""
    names = {}
    for ds in sorted({m.entry.dataset for m in models if m.history}):
        names[f"curves-{ds}"] = f"curves-{ds}.png"
    if any(m.entry.dataset == COST_DATASET and _cost_point(m) for m in models):
        names[f"cost-{COST_DATASET}"] = f"cost-{COST_DATASET}.png"
    return names


def render_page(models: Sequence[ModelHistory], page: str | os.PathLike, png_dir: str | os.PathLike, zoo: Zoo) -> str:
    """The Markdown page (links relative to ``page``'s folder); depends only on the registry and the histories."""
    page_dir = Path(page).parent
    img = {k: _rel(Path(png_dir) / v, page_dir) for k, v in planned_images(models).items()}
    zoo_link, models_link = _rel(zoo.path, page_dir), _rel(zoo.models_dir, page_dir) + "/"
    zoo_doc = "zoo.md#training-histories-and-the-report"
    zoo_doc = f"[zoo.md]({zoo_doc})" if (page_dir / "zoo.md").is_file() else "docs/zoo.md"
    lines = [
        "# Results: the zoo in pictures",
        "",
        "<!-- generated by `dgl-hod report` from zoo.yaml and models/*.history.json; do not edit by hand -->",
        "",
        f"Generated by `dgl-hod report` from [`zoo.yaml`]({zoo_link}) and the per-epoch history files in "
        f"[`models/`]({models_link}) that zoo.yaml binds by sha256 (format and checks: {zoo_doc}). "
        "Regenerate it after `dgl-hod package`; the tests "
        "check that it matches the registry.",
        "",
        "## The zoo",
        "",
        "One row per zoo entry. val/test: mean ± std over seeds; epochs and s/epoch (training + evaluation of one "
        "epoch) are those of the shipped seed, measured on the machine and thread count in its `recipe`; wall: the "
        "shipped seed's whole run.",
        "",
        "| model | dataset | val | test | seeds | epochs | s/epoch | wall (min) | peak memory (MiB) | history |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        e, r = m.entry, m.entry.recipe
        wall = r.get("wall_time_s")
        lines.append(
            f"| `{m.name}` | {e.dataset} | {_value(e, 'val')} | {_value(e, 'test')} | "
            f"{e.metrics.get('test', {}).get('num_seeds', 1)} | {r.get('epochs_run', '—')} | "
            f"{_fmt(r.get('seconds_per_epoch'), 2)} | {_fmt(wall / 60 if isinstance(wall, (int, float)) else None)} | "
            f"{_fmt(m.peak_rss_mib, 0)} | {_history_cell(m)} |"
        )
    lines += ["", *_goal_section(models), "## Training curves", ""]
    for ds in sorted({m.entry.dataset for m in models}):
        group = [m for m in models if m.entry.dataset == ds]
        lines += [f"### {ds}", ""]
        key = f"curves-{ds}"
        if key in img:
            lines += [
                f"![{ds}: validation and test curves against epoch and wall-clock]({img[key]})",
                "",
                "Solid: validation, dashed: test, one line per seed (the shipped seed strongest); the dot is the "
                "test value at the best validation epoch, whose weights are shipped. Wall-clock: seconds since "
                "the run started (summed epoch times where the trainer recorded no elapsed time).",
                "",
            ]
        none = [f"`{m.name}`" for m in group if not m.history and not m.problem]
        if none:
            lines += [
                f"No history recorded for {', '.join(none)}: packaged before the zoo kept per-epoch histories, and "
                "their runs are gone, so no curve is drawn for them (retraining and packaging them adds the curves).",
                "",
            ]
        for m in group:
            if m.problem:
                lines += [f"**Refused: `{m.name}`**: {m.problem}", ""]
    lines += [f"## Accuracy against cost ({COST_DATASET})", ""]
    cost = [m for m in models if m.entry.dataset == COST_DATASET and _cost_point(m)]
    key = f"cost-{COST_DATASET}"
    if key not in img:
        lines += [f"No {COST_DATASET} model records a test metric and seconds per epoch.", ""]
        return _join(lines)
    lines += [
        f"![{COST_DATASET}: test metric against seconds per epoch]({img[key]})",
        "",
        "Test MAE (mean ± std over seeds) against the shipped seed's seconds per epoch, log scale; red circles: "
        "HOD-GNN, blue squares: subgraph GNNs, green triangles: message-passing baselines. The times come from "
        "each entry's recipe (machine, threads and load as recorded there), so they compare runs under the same "
        "conditions only.",
        "",
    ]
    missing = [f"`{m.name}`" for m in cost if m.peak_rss_mib is None]
    if len(missing) == len(cost):
        lines += [
            f"**Peak memory is not recorded** for any {COST_DATASET} model, so only seconds per epoch is drawn. "
            f"To add the memory panel, {_MEMORY_HOW}.",
            "",
        ]
    elif missing:
        lines += [f"Peak memory is not recorded for {', '.join(missing)} ({_MEMORY_HOW}).", ""]
    return _join(lines)


def _join(lines: Sequence[str], width: int = 120) -> str:
    """The page's text with prose lines wrapped at ``width`` (tables, headings, images and comments as they are)."""
    out = []
    for line in lines:
        if len(line) > width and not line.startswith(("|", "#", "!", "<!--")):
            out += textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)
        else:
            out.append(line)
    return "\n".join(out).rstrip() + "\n"


def write_report(
    zoo: Zoo | None = None,
    out: str | os.PathLike = "docs/results.md",
    png_dir: str | os.PathLike | None = None,
) -> Report:
    """Draw every figure of :func:`planned_images` into ``png_dir`` (default: ``img/`` next to ``out``) and write
    the page to ``out``, all atomically. Histories that fail their checks are listed in ``problems`` (and on the
    page) and not drawn; the rest of the report is still written.
    """
    zoo = zoo or default_zoo()
    page = Path(out)
    png_root = Path(png_dir) if png_dir is not None else page.parent / "img"
    if page.exists() and page.is_dir():
        raise IsADirectoryError(f"--out {page} is a folder; give the Markdown file to write, e.g. docs/results.md")
    models = collect(zoo)
    images = []
    for key, fname in planned_images(models).items():
        kind, _, ds = key.partition("-")
        target = png_root / fname
        images.append(plot_curves(models, ds, target) if kind == "curves" else plot_cost(models, target, ds))
    atomic_write_bytes(page, render_page(models, page, png_root, zoo).encode("utf-8"))
    return Report(page, images, [f"{m.name}: {m.problem}" for m in models if m.problem])
