"""`make bench` at its smallest (--smoke): the harness writes its JSON, table and plots with
the figures in them. Figures are never asserted: a benchmark is not a timed test."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench(out: Path, half: str, timeout: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", half, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"python -m benchmarks --only {half} failed:\n{done.stdout}\n{done.stderr}"
    results = json.loads((out / "results.json").read_text())
    table = (out / "results.md").read_text()
    assert table.split("\n", 2)[2] in done.stdout  # the table is printed too
    for key in ("cpu", "cores", "kernel", "python", "date"):
        assert results["machine"][key], key
    assert "Machine:" in table
    assert {p.suffix for p in out.iterdir()} >= {".json", ".md", ".png"}
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    return results


def test_control_plane_smoke(tmp_path):
    results = _bench(tmp_path, "controlplane", timeout=120)
    sections = results["sections"]
    names = {s: {f["name"] for f in v["figures"]} for s, v in sections.items()}
    network = next(s for s in sections if "l2sm-network" in s)
    knf = next(s for s in sections if "KNF library" in s)
    resync = next(s for s in sections if "resync" in s)
    assert {"first dispatch, 50 members", "steady dispatch, 50 members", "per member, steady, 50"} <= names[
        network
    ]
    assert {"template patch, 1 net", "steady dispatch, 1 net"} <= names[knf]
    assert {"resync, nothing missing", "reads, nothing missing", "resync after restart"} <= names[resync]
    for section in sections.values():
        for figure in section["figures"]:
            assert figure["n"] >= 1 and figure["median"] >= 0
            assert {"median", "p95", "min", "max", "spread", "n", "unit"} <= set(figure)
    table = (tmp_path / "results.md").read_text()
    assert "| figure | median | p95 | spread | n | unit |" in table
    assert "resync, nothing missing" in table
    assert len(list(tmp_path.glob("*.png"))) == len(sections)


def _dataplane_skip_reason() -> str | None:
    if importlib.util.find_spec("benchmarks.dataplane") is None:
        return "benchmarks/dataplane.py is absent"
    if os.geteuid() != 0:
        return "the data plane runs on the lab: needs root"
    if shutil.which("ovs-vswitchd") is None:
        return "the data plane runs on the lab: needs Open vSwitch (ovs-vswitchd)"
    return None


def test_data_plane_smoke(tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        reason = _dataplane_skip_reason()
    finally:
        sys.path.remove(str(ROOT))
    if reason:
        pytest.skip(reason)
    results = _bench(tmp_path, "dataplane", timeout=180)
    figures = [f for s in results["sections"].values() for f in s["figures"]]
    assert figures, f"no data-plane figure: {results['sections']}"
