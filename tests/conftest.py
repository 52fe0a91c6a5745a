"""Fixtures and helpers shared by several test modules.

A module opts in to a fixture with ``pytestmark = pytest.mark.usefixtures(...)`` (or a test argument) and imports a
helper with ``from conftest import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import torch

if TYPE_CHECKING:
    from dgl_hod.zoo import ZooEntry

#: the trainer tests' hod-gnn config: order 1, sparse jets, widths 16/8, 2 base and 2 downstream layers
TINY_HOD_GNN = {
    "order": 1,
    "jet_mode": "sparse",
    "hidden_dim": 16,
    "base_hidden_dim": 8,
    "base_layers": 2,
    "downstream_layers": 2,
}


def zinc12k_zoo_entry(
    name: str, arch: str, config: dict[str, Any], model: torch.nn.Module, sha256: str, **fields: Any
) -> ZooEntry:
    """The zoo entry of ``model`` (``arch`` with ``config``) for zinc12k regression, its weights (sha256 ``sha256``) at
    ``models/<name>.safetensors`` and an empty recipe; ``fields`` are the rest (``metrics`` is required).
    """
    from dgl_hod.zoo import ZooEntry

    return ZooEntry(
        name=name,
        arch=arch,
        config=dict(config),
        dataset="zinc12k",
        task="regression",
        weights=f"models/{name}.safetensors",
        sha256=sha256,
        num_params=sum(p.numel() for p in model.parameters()),
        recipe={},
        **fields,
    )


@pytest.fixture
def float64():
    """Exactness is checked in float64 (restored afterwards so other test modules are unaffected)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module (small graphs: threads only add overhead and noise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def empty_graph():
    """A graph with no nodes and no edges, with the (empty) integer ``feat`` node and edge data of the molecule test
    graphs, to batch with them."""
    import dgl

    g = dgl.graph(([], []), num_nodes=0)
    g.ndata["feat"] = torch.zeros(0, dtype=torch.long)
    g.edata["feat"] = torch.zeros(0, dtype=torch.long)
    return g


#: a test slower than this is named in the output as soon as it ends, so a CI log cut short by its time limit still
#: shows where the time went (``--durations`` prints only at the end)
SLOW_TEST_S = 60.0


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    if call.when == "call" and call.duration > SLOW_TEST_S:
        terminal = item.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"\n[slow test: {item.nodeid} took {call.duration:.0f} s]")
