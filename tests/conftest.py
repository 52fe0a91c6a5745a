"""Fixtures shared by several test modules; a module opts in with ``pytestmark = pytest.mark.usefixtures(...)``."""

import pytest
import torch


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
