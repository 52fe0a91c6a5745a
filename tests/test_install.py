"""The wheel works outside the checkout: build it, install it (no dependencies: torch and dgl are reused from the
running environment) into a folder, and run ``dgl-hod list`` and ``dgl-hod eval gine-zinc`` from another directory.

This is the CI check of issue 10 item 7: before, the wheel held only ``dgl_hod/`` and found zoo.yaml, the weights
and the datasets next to the source tree, so an installed copy could list nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _source_copy(dest: Path) -> Path:
    """The checkout's tracked and untracked-but-not-ignored files (what a clean clone has), copied to ``dest``."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files belong to the source tree")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for rel in filter(None, files):
        src = ROOT / os.fsdecode(rel)
        if src.is_file():
            (dest / os.fsdecode(rel)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(rel))
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = _source_copy(tmp / "src")
    wheels = tmp / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("dgl_hod-*.whl")
    target = tmp / "site"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert inst.returncode == 0, inst.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DGL_HOD_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), DGL_HOD_CACHE=str(tmp / "cache"))
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return wheel, target, env, elsewhere


def _run(args, env, cwd, timeout=600):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_wheel_ships_the_registry_weights_and_data(installed):
    import zipfile

    wheel, *_ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dgl_hod/_shipped/zoo.yaml" in names
    assert "dgl_hod/_shipped/models/gine-zinc.safetensors" in names
    assert "dgl_hod/_shipped/datasets/SHA256SUMS" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_installed_cli_lists_and_evaluates_outside_the_checkout(installed):
    _, target, env, elsewhere = installed
    where = _run(
        [sys.executable, "-c", "import dgl_hod.zoo as z; print(z.__file__, z.default_zoo().path)"], env, elsewhere
    )
    assert where.returncode == 0, where.stderr
    module, registry = where.stdout.split()
    assert Path(module).is_relative_to(target) and Path(registry) == target / "dgl_hod" / "_shipped" / "zoo.yaml"
    script = target / "bin" / "dgl-hod"
    listed = _run([sys.executable, str(script), "list", "--json"], env, elsewhere)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert "gine-zinc" in rows and all(r["weights"] == "yes" for r in rows.values())
    ev = _run([sys.executable, str(script), "eval", "gine-zinc", "--json"], env, elsewhere)
    assert ev.returncode == 0, ev.stderr[-2000:]
    res = json.loads(ev.stdout)
    assert res["agrees"] is True and res["abs_diff"] < 1e-4
