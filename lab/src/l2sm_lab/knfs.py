"""The CDN KNFs' workloads in the lab: what each charm's Pebble layers run, inside the unit's
network namespace, from the planner's rendered config (l2sm_lab.plan.Workload).

nginx and the jobs (l2sm_core.cdn.jobs, with this Python) run as processes the lab records
(LabState.spawn), so `down` stops them by PID. The router has no process: its ruleset lives
in the namespace's kernel, loaded with one `nft -f` as the charm loads it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import sys
import time
from pathlib import Path
from typing import Any

import l2sm_core
from l2sm_core.cdn import content, jobs, render, results
from l2sm_lab.plan import UnitPlan
from l2sm_lab.procs import LabError, LabState, run

# The jobs as the lab runs them: this Python, the core from where it is installed.
JOB_ROOT = str(Path(l2sm_core.__file__).resolve().parents[1])
JOB_PYTHON = sys.executable
FINISHED = ("done", "failed", "stopped")  # a job's final states
RULESET = "ruleset.nft"
MANIFEST_TIMEOUT = 120  # as the content server charm
READY_TIMEOUT = 10.0
POLL = 0.05
_PROC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # what LabState.spawn takes


def proc_name(unit: str, role: str) -> str:
    """The recorded name of a unit's process: `cdn-cache/0:nginx`, or `cdn-cache-0.nginx`
    where LabState refuses '/' and ':'."""
    name = f"{unit}:{role}"
    return name if _PROC_NAME.fullmatch(name) else f"{unit.replace('/', '-')}.{role}"


def job_argv(command: str, **options: Any) -> list[str]:
    """A job's argv as the lab runs it (jobs.job_command with the lab's root and python)."""
    return shlex.split(jobs.job_command(command, root=JOB_ROOT, python=JOB_PYTHON, **options))


def local_job_argv(command_line: str) -> list[str]:
    """A job command line planned for the workload container (python3 /opt/l2sm/...) as the
    lab runs it: the same job and options, with the lab's python and root."""
    argv = shlex.split(command_line)
    script = f"{jobs.JOB_ROOT}/l2sm_core/cdn/jobs.py"
    if len(argv) >= 2 and argv[1] == script:
        return [JOB_PYTHON, f"{JOB_ROOT}/l2sm_core/cdn/jobs.py", *argv[2:]]
    return argv


def _check_reachable(path: Path) -> None:
    # nginx's workers run as nobody: every directory above what it serves must let others in.
    for parent in (path, *path.parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise LabError(
                f"nginx's workers (user nobody) cannot reach {path}: {parent} is mode "
                f"{stat.S_IMODE(mode):o}; keep the lab's unit files where others may traverse (o+x)"
            )


def _make_dirs(unit: UnitPlan) -> None:
    assert unit.workload is not None
    paths = unit.workload.paths
    for directory in (
        paths.content_dir,
        paths.runtime_dir,
        paths.status_dir,
        str(Path(paths.nginx_conf).parent),
    ):
        Path(directory).mkdir(parents=True, exist_ok=True)
    os.chmod(paths.content_dir, 0o755)


def start_workload(state: LabState, unit: UnitPlan, ns: str) -> None:
    """Realise `unit.workload` in namespace `ns` (its interfaces already configured)."""
    workload = unit.workload
    if workload is None:
        return
    if workload.kind == "router":
        run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], netns=ns)
        reload_router(state, unit, ns)
        return
    assert workload.nginx is not None
    _make_dirs(unit)
    _check_reachable(Path(workload.paths.content_dir))
    conf = workload.paths.nginx_conf
    Path(conf).write_text(workload.nginx)
    run(render.nginx_test_command(conf), netns=ns)
    name = proc_name(unit.name, "nginx")
    state.spawn(name, render.nginx_command(conf), netns=ns)
    _wait_listening(state, name, ns, _port(unit))
    if workload.kind == "content-server":
        refresh_manifest(unit, ns)
    elif workload.kind == "cache" and workload.sync_command:
        state.spawn(proc_name(unit.name, results.SYNC), local_job_argv(workload.sync_command), netns=ns)


def _port(unit: UnitPlan) -> int:
    assert unit.workload is not None and unit.workload.nginx is not None
    # The site's own listen line, as rendered: the plan keeps no port of its own.
    match = re.search(r"^\s*listen (\d+)", unit.workload.nginx, re.MULTILINE)
    if match is None:
        raise LabError(f"{unit.name}: the rendered nginx.conf has no listen line")
    return int(match[1])


_CONNECT = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
"""


def _wait_listening(state: LabState, name: str, ns: str, port: int, timeout: float = READY_TIMEOUT) -> None:
    """Until something in `ns` answers on 127.0.0.1:port; LabError (with the log's tail) if
    the process died or nothing answered in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not state.alive(name):
            raise LabError(f"{name} exited before answering on port {port}: {_log_tail(state, name)}")
        done = run([JOB_PYTHON, "-c", _CONNECT, str(port), "0.5"], netns=ns, check=False)
        if done.returncode == 0:
            return
    raise LabError(
        f"{name} did not answer on port {port} in {ns} within {timeout} s: {_log_tail(state, name)}"
    )


def _log_tail(state: LabState, name: str) -> str:
    info = next((p for p in state.procs if p.name == name), None)
    try:
        text = Path(info.log).read_text(errors="replace") if info else ""
    except OSError:
        text = ""
    return " | ".join(text.strip().splitlines()[-3:]) or "no output"


def stop_workload(state: LabState, unit: UnitPlan) -> None:
    """Stop every recorded process of the unit (jobs first, nginx last)."""
    prefixes = (proc_name(unit.name, ""),)
    for info in reversed([p for p in state.procs if p.name.startswith(prefixes)]):
        state.stop(info.name)


def reload_router(state: LabState, unit: UnitPlan, ns: str) -> None:
    """Load the unit's planned ruleset with one `nft -f` in `ns`; the file is kept only once
    nft took it (so it always says what is loaded, as the charm's). LabError if nft refuses:
    the kernel keeps the previous ruleset whole."""
    workload = unit.workload
    if workload is None or workload.ruleset is None:
        raise LabError(f"{unit.name} is no router: it has no ruleset")
    runtime = Path(workload.paths.runtime_dir)
    runtime.mkdir(parents=True, exist_ok=True)
    candidate = runtime / f".{RULESET}.new"
    candidate.write_text(workload.ruleset)
    run(["nft", "-f", str(candidate)], netns=ns)
    candidate.replace(runtime / RULESET)


def loaded_ruleset(unit: UnitPlan) -> str | None:
    assert unit.workload is not None
    try:
        return (Path(unit.workload.paths.runtime_dir) / RULESET).read_text()
    except FileNotFoundError:
        return None


# -- the content server's manifest -------------------------------------------------------------


def listing(unit: UnitPlan) -> dict[str, int]:
    """The files the manifest should list: name -> bytes (the charm's rule, results.listed)."""
    assert unit.workload is not None
    found = {}
    with os.scandir(unit.workload.paths.content_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and results.listed(entry.name):
                found[entry.name] = entry.stat(follow_symlinks=False).st_size
    return found


def read_manifest(unit: UnitPlan) -> content.Manifest | None:
    assert unit.workload is not None
    try:
        return content.parse_manifest(
            Path(unit.workload.paths.content_dir, content.MANIFEST_NAME).read_bytes()
        )
    except (OSError, ValueError):
        return None


def refresh_manifest(unit: UnitPlan, ns: str) -> content.Manifest:
    """manifest.json, rewritten by the jobs' `manifest` (in `ns`) when it no longer lists what
    the directory holds: the content server charm's _refresh_manifest."""
    assert unit.workload is not None
    manifest = read_manifest(unit)
    if manifest is not None and {e.name: e.size for e in manifest.entries} == listing(unit):
        return manifest
    run(job_argv("manifest", dir=unit.workload.paths.content_dir), netns=ns, timeout=MANIFEST_TIMEOUT)
    manifest = read_manifest(unit)
    if manifest is None:
        raise LabError(f"{unit.name}: the manifest job wrote no readable {content.MANIFEST_NAME}")
    return manifest


# -- one-shot jobs -----------------------------------------------------------------------------


def status_file(unit: UnitPlan, job: str) -> Path:
    assert unit.workload is not None
    return Path(unit.workload.paths.status_dir, f"{job}.json")


def job_status(unit: UnitPlan, job: str) -> dict[str, Any] | None:
    try:
        data = json.loads(status_file(unit, job).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def job_running(state: LabState, unit: UnitPlan, job: str) -> bool:
    return state.alive(proc_name(unit.name, job))


def running_jobs(state: LabState, unit: UnitPlan, names: tuple[str, ...]) -> dict[str, dict[str, Any] | None]:
    """The unit's jobs running now, with their status."""
    return {job: job_status(unit, job) for job in names if job_running(state, unit, job)}


def start_job(
    state: LabState, unit: UnitPlan, ns: str, job: str, argv: list[str], wait: float
) -> dict[str, Any]:
    """Start a one-shot job in `ns` as a recorded process and return its status, waiting up to
    `wait` s for it to end (l2sm_charmlib.workload.Jobs.start, with the lab's processes)."""
    name = proc_name(unit.name, job)
    if state.alive(name):
        raise LabError(f"the {job} job of {unit.name} is running")
    if any(p.name == name for p in state.procs):
        state.stop(name)  # the last run's record: it has ended
    # The last run's status must not pass for this one's.
    status_file(unit, job).unlink(missing_ok=True)
    state.spawn(name, argv, netns=ns)
    deadline = time.monotonic() + wait
    while True:
        status = job_status(unit, job) or {}
        if status.get("state") in FINISHED or time.monotonic() >= deadline:
            return status
        if not state.alive(name):
            # Ended: its final status is written before it exits; one last read.
            return job_status(unit, job) or {"state": "failed", "error": f"exited: {_log_tail(state, name)}"}
        time.sleep(POLL)
