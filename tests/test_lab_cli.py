"""The README's lab commands, run as a user runs them: `l2sm-lab` processes, one per command,
sharing nothing but the lab's record; and `l2sm-lab demo cdn`, which `make demo` runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("ovs-vswitchd", "ovsdb-server", "ethtool", "nginx", "nft", "ip", "ping")
_missing = [p for p in PROGRAMS if not shutil.which(p)]
needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_missing),
    reason="the lab needs root and " + ", ".join(PROGRAMS) + f" (missing: {', '.join(_missing) or 'none'})",
)
LAB = [sys.executable, "-m", "l2sm_lab.cli"]


def _lab(root: Path, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*LAB, "--root", str(root), "-q", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if check:
        assert done.returncode == 0, (
            f"l2sm-lab {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done


def _namespaces(prefix: str = "") -> set[str]:
    """This test's namespaces (other labs may run on the machine meanwhile)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {n for n in (line.split()[0] for line in out.splitlines() if line.strip()) if n.startswith(prefix)}


def test_a_bad_bundle_is_refused_naming_the_application_and_option(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "bundles" / "cdn.yaml").read_text().replace("rules: |", "colour: red\n      rules: |", 1)
    bad.write_text(text)
    done = _lab(tmp_path / "lab", "up", str(bad), check=False)
    if os.geteuid() != 0 or _missing:
        assert done.returncode == 1 and ("root" in done.stderr or "missing" in done.stderr)
        return
    assert done.returncode == 2
    assert "cdn-router" in done.stderr and "'colour'" in done.stderr
    assert not (tmp_path / "lab" / "record.json").exists()


def test_status_without_a_lab_says_so(tmp_path):
    done = _lab(tmp_path, "status", check=False)
    assert done.returncode != 0 and "l2sm-lab" in done.stderr


@needs_lab
def test_the_readme_commands(tmp_path):
    root = tmp_path / "lab"
    lab_id = f"c{os.getpid() % 1000}"
    assert not _namespaces(lab_id + "-")
    _lab(root, "up", "bundles/cdn.yaml", "--nodes", "2", "--id", lab_id)
    assert _namespaces(lab_id + "-")
    try:
        status = json.loads(_lab(root, "status", "--json").stdout)
        assert {u["unit"] for u in status["units"]} == {"cdn-content-server/0", "cdn-router/0", "cdn-cache/0"}
        assert all(u["running"] for u in status["units"])
        assert "NETWORK" in _lab(root, "status").stdout
        ping = _lab(root, "exec", "cdn-cache/0", "--", "ping", "-c", "3", "10.0.2.10")
        assert "ttl=63" in ping.stdout
        probe = json.loads(
            _lab(root, "action", "cdn-cache/0", "check-connectivity", "target=10.0.2.10", "--json").stdout
        )
        assert probe["ttl"] == "63" and probe["hops"] == "10.0.1.1 10.0.2.10"
        _lab(
            root,
            "action",
            "cdn-content-server/0",
            "generate-content",
            "name=demo.bin",
            "size=1M",
            "wait=60",
        )
        fetched = _lab(root, "action", "cdn-cache/0", "fetch-content", "name=demo.bin", "wait=60", "--json")
        assert json.loads(fetched.stdout)["state"] == "done"
        _lab(root, "action", "cdn-router/0", "set-link", "network=my-second-osm-net", "state=down")
        cut = _lab(root, "exec", "cdn-cache/0", "--", "ping", "-c", "1", "-W", "1", "10.0.2.10", check=False)
        assert cut.returncode != 0
        refused = _lab(
            root, "action", "cdn-router/0", "set-link", "network=nowhere", "state=down", check=False
        )
        assert refused.returncode == 1 and "network" in refused.stderr
    finally:
        _lab(root, "down")
    assert not _namespaces(lab_id + "-")
    assert not (root / "record.json").exists()


@needs_lab
def test_down_works_after_up_was_killed_half_way(tmp_path):
    root = tmp_path / "lab"
    lab_id = f"d{os.getpid() % 1000}"
    up = subprocess.Popen(
        [*LAB, "--root", str(root), "-q", "up", "bundles/cdn.yaml", "--id", lab_id],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record = root / "record.json"
    deadline = time.monotonic() + 60
    pids: list[int] = []
    while time.monotonic() < deadline and up.poll() is None:
        try:
            pids = [p["pid"] for p in json.loads(record.read_text())["procs"]]
        except (OSError, ValueError):
            pids = []
        if len(pids) >= 3:  # some switches are up: a crash now leaves processes and namespaces
            break
        time.sleep(0.05)
    up.kill()
    up.wait()
    assert pids, "up made no process before it was killed"
    assert _namespaces(lab_id + "-"), "the killed up left nothing to remove"
    _lab(root, "down")
    assert not _namespaces(lab_id + "-")
    for pid in pids:
        state = Path(f"/proc/{pid}/stat")
        assert not state.exists() or state.read_text().split(") ")[1].startswith("Z")


@needs_lab
def test_the_demo_make_demo_runs(tmp_path):
    report_path = tmp_path / "report.json"
    done = _lab(tmp_path / "lab", "demo", "cdn", "--json", str(report_path), timeout=400, check=False)
    assert report_path.exists(), f"no report: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    report = json.loads(report_path.read_text())
    assert done.returncode == 0 and report["ok"], json.dumps(report, indent=1) + done.stderr
    assert report["ping_ttl"] == 63
    assert report["traceroute_hops"] == ["10.0.1.1", "10.0.2.10"]
    assert report["download_sha256_match"] and report["resumed"]
    assert 0 < report["resume_offset_bytes"] < report["download_bytes"]
    assert report["isolation_leaks"] == 0 and report["setup_seconds"] > 0
    from l2sm_lab.demo import demo_lab_id

    assert not _namespaces(demo_lab_id(tmp_path / "lab" / "demo") + "-")  # torn down without --keep
