"""The controller's Pebble and the controller charm's resync, in the lab.

In the cluster, Pebble restarts the controller when it exits (on-failure, with a growing
backoff) and the l2sm-controller charm, woken by the check events and by update-status,
runs its resync (l2sm_controlplane.resync) so a controller that lost its state gets the
networks and ports back with no one acting. This process plays both parts:

    python -m l2sm_lab.supervisor --root ROOT --netns NS --rest-fd FD --credentials FILE \
        [--of-port 6633] [--resync-interval 10]

It holds the REST listening socket (bound by the lab on the host's loopback), so the port
stays the same across restarts, and passes it to each `l2sm_lab.controller` child started
in namespace NS. When a child answers after a start, and every --resync-interval seconds
while it answers, it runs the resync against the lab's desired state, read from the lab's
record (never written here: the lab's commands own it). What it did goes to
ROOT/supervisor.json (its own file, which `l2sm-lab status` reads). SIGTERM ends the child
and then itself; should this process die, the child is killed by the kernel (PDEATHSIG), so
nothing that goes wrong in one poll may end it: it is logged, kept in the file's failures,
and the next poll goes on.

The lab's operator (port adds and removes in l2sm_lab.lab) and every resync take
ROOT/resync.lock, so a resync never reads the controller and the record half-way through
an attach: in the cluster the charm's grace period for young pods plays that part.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2sm_controlplane.resync import DesiredState, PodPorts, ResyncReport, desired_from_pods, resync_cluster
from l2sm_controlplane.vnets import ControllerError, VnetsClient

LOG = logging.getLogger("l2sm_lab.supervisor")
STATUS = "supervisor.json"
RESYNC_LOCK = "resync.lock"
RECORD = "record.json"
USER = "karaf"
POLL = 0.2
STOP_TIMEOUT = 5.0
FAILURES_KEPT = 5
_PR_SET_PDEATHSIG = 1

# Root -> (fd, depth): the lock is reentrant within one process (flock is per open file).
_HELD: dict[Path, list[int]] = {}


class Abandoned(Exception):
    """The wait for the lock was given up because the process is stopping."""


@contextlib.contextmanager
def operator_lock(
    root: Path, timeout: float = 120.0, give_up: threading.Event | None = None
) -> Iterator[None]:
    """Serialise the lab's port changes with resyncs (see the module's docstring). A waiter
    whose `give_up` gets set stops waiting (Abandoned): a supervisor told to stop must not
    sit on the lock until it is SIGKILLed, which would leave its child to die later."""
    root = Path(root).resolve()
    held = _HELD.get(root)
    if held is not None:
        held[1] += 1
        try:
            yield
        finally:
            held[1] -= 1
        return
    fd = os.open(root / RESYNC_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{root / RESYNC_LOCK} held for {timeout:.0f} s") from None
                if give_up is None:
                    time.sleep(0.05)
                elif give_up.wait(0.05):
                    raise Abandoned(f"stopped while waiting for {root / RESYNC_LOCK}") from None
        _HELD[root] = [fd, 1]
        try:
            yield
        finally:
            del _HELD[root]
    finally:
        os.close(fd)  # releases the flock


# -- what the cluster says ---------------------------------------------------------------------


def live_networks(lab: Mapping[str, Any]) -> list[str]:
    """The L2Networks the cluster holds: the lab's record never deletes one."""
    return list(lab.get("networks") or [])


def pods(lab: Mapping[str, Any]) -> list[PodPorts]:
    """The lab's pods as the API shows them: every unit with the ports it was attached with;
    one left Terminating or Failed is gone (its ports released). A pod gone entirely is not
    in the record at all, as it is not in the API. None is young: the lab's operator holds
    the resync lock through an attach, which the charm's grace period stands for."""
    return [
        PodPorts(
            name,
            {net: [port["endpoint"]] for net, port in (unit.get("ports") or {}).items()},
            gone=bool(unit.get("gone")),
        )
        for name, unit in sorted((lab.get("units") or {}).items())
    ]


def desired_state(lab: Mapping[str, Any]) -> DesiredState:
    """What the controller should hold by the record (l2sm_controlplane.resync.desired_from_pods)."""
    return desired_from_pods(live_networks(lab), pods(lab))[0]


def read_record(root: Path) -> dict[str, Any]:
    """The lab part of the record; written with os.replace, so a read is never torn."""
    return dict(json.loads((Path(root) / RECORD).read_text())["data"].get("lab") or {})


def resync(client: VnetsClient, read: Callable[[], Mapping[str, Any]]) -> ResyncReport:
    """The charm's resync (l2sm_controlplane.resync.resync_cluster) with the lab's record as
    the cluster: `read` gives the record as it is now, called each time the charm lists the
    API (networks, then the controller is read, then pods, then networks again)."""
    return resync_cluster(client, lambda: live_networks(read()), lambda: pods(read()))[0]


# -- decisions, kept pure ----------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Pebble's on-failure restarts: the first after `initial`, each next one `factor` times
    later, at most `limit`. A child that ran at least `limit` seconds starts the count again
    (the lab's choice: it was healthy, so this is a new failure, not a crash loop)."""

    initial: float = 0.5
    factor: float = 2.0
    limit: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds before the restart following `failures` consecutive failures (>= 1)."""
        if failures < 1:
            raise ValueError("a restart follows at least one failure")
        return min(self.limit, self.initial * self.factor ** (failures - 1))

    def failures_after(self, failures: int, ran_for: float) -> int:
        return 1 if ran_for >= self.limit else failures + 1


@dataclass
class ResyncSchedule:
    """When the charm would resync: once the controller answers after a (re)start (the check
    recovering, or the next update-status), then every `interval` seconds while it answers
    (update-status); a failed resync is tried again at the next poll after `retry`."""

    interval: float
    retry: float = 1.0
    after_start: bool = True
    last: float | None = None
    failed_at: float | None = None

    def started(self) -> None:
        self.after_start = True

    def due(self, now: float, answering: bool) -> bool:
        if not answering:
            return False
        if self.failed_at is not None:
            return now - self.failed_at >= self.retry
        if self.after_start:
            return True
        return self.last is None or now - self.last >= self.interval

    def done(self, now: float, ok: bool) -> None:
        if ok:
            self.last, self.failed_at, self.after_start = now, None, False
        else:
            self.failed_at = now


@dataclass
class Status:
    """What ROOT/supervisor.json holds."""

    pid: int
    child_pid: int = 0
    child_start: int = 0
    child_started_at: float = 0.0
    restarts: int = 0
    last_exit: str = ""
    answering: bool = False
    last_resync: float = 0.0
    last_resync_summary: str = ""
    last_resync_ports: int = 0
    last_repair: float = 0.0
    last_repair_summary: str = ""
    resyncs: int = 0
    failures: list[str] = field(default_factory=list)

    def save(self, root: Path) -> None:
        text = json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n"
        tmp = Path(root) / f".{STATUS}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, Path(root) / STATUS)


def read_status(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(root) / STATUS).read_text())
    except (OSError, ValueError):
        return None


# -- the process -------------------------------------------------------------------------------


def _die_with_parent() -> None:
    # Runs in the child between fork and exec; kept across the exec of `ip` and python.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _start_child(args: argparse.Namespace) -> subprocess.Popen:
    argv = [
        "ip", "netns", "exec", args.netns, sys.executable, "-m", "l2sm_lab.controller",
        "--of-port", str(args.of_port), "--rest-fd", str(args.rest_fd),
        "--credentials", str(args.credentials),
    ]  # fmt: skip
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        pass_fds=(args.rest_fd,),
        preexec_fn=_die_with_parent,  # no thread here holds a lock the child needs
    )


def _start_time(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(text[text.rindex(")") + 2 :].split()[19])


def _end(child: subprocess.Popen) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(STOP_TIMEOUT)


def _note(status: Status, failure: str) -> None:
    status.failures = [*status.failures[-(FAILURES_KEPT - 1) :], failure]


Resync = Callable[[VnetsClient, Path], ResyncReport]


def resync_record(client: VnetsClient, root: Path) -> ResyncReport:
    """The resync against the lab's record on disk, read as often as the charm lists the API."""
    return resync(client, lambda: read_record(root))


@dataclass
class Supervisor:
    """The restart loop and the resync schedule. Nothing that goes wrong in one poll (a bug,
    an answer no one foresaw) may end it: this process ending takes the controller with it
    (PDEATHSIG) and nothing restarts either. Such a failure is logged, kept in `failures`
    and the next poll goes on; a failed resync is retried as a refused one is."""

    root: Path
    client: VnetsClient
    start_child: Callable[[], subprocess.Popen]
    interval: float
    stop: threading.Event = field(default_factory=threading.Event)
    resync: Resync = resync_record
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        self.schedule = ResyncSchedule(self.interval)
        self.status = Status(pid=os.getpid())

    def _resync_now(self) -> bool:
        try:
            with operator_lock(self.root, give_up=self.stop):
                report = self.resync(self.client, self.root)
        except Abandoned:
            return False
        except (ControllerError, OSError, ValueError, KeyError, TimeoutError) as exc:
            _note(self.status, f"resync: {exc}")
            LOG.warning("resync failed: %s", exc)
            return False
        status, now = self.status, time.time()
        status.resyncs += 1
        status.last_resync, status.last_resync_summary = now, report.summary()
        status.last_resync_ports = report.ports_restored + report.ports_added + report.ports_rebuilt
        if report.repaired or report.ports_removed:
            status.last_repair, status.last_repair_summary = now, report.summary()
            LOG.warning("resync repaired the controller: %s", report.summary())
        return not report.failures

    def poll(self) -> None:
        """One look at the controller: is it answering, and is a resync due."""
        try:
            answering = self.client.is_ready()
        except Exception as exc:  # see the class's docstring
            self._unexpected("readiness probe", exc)
            return
        if answering != self.status.answering:
            self.status.answering = answering
            self._save()
        now = time.monotonic()
        if self.schedule.due(now, answering):
            try:
                ok = self._resync_now()
            except Exception as exc:  # see the class's docstring
                self._unexpected("resync", exc)
                ok = False
            self.schedule.done(now, ok)
            self._save()

    def _unexpected(self, what: str, exc: Exception) -> None:
        LOG.error("%s failed unexpectedly; the supervisor goes on", what, exc_info=exc)
        _note(self.status, f"{what}: {type(exc).__name__}: {exc}")
        self._save()

    def run(self) -> int:
        status, failures = self.status, 0
        while not self.stop.is_set():
            started, code_text = time.monotonic(), ""
            try:
                child = self.start_child()
            except OSError as exc:  # fork or exec refused: a failed start, retried with backoff
                child = None
                code_text = f"could not start: {exc}"
                _note(status, f"start: {exc}")
            if child is not None:
                status.child_pid, status.child_start = child.pid, _start_time(child.pid)
                status.child_started_at, status.answering = time.time(), False
                self.schedule.started()
                self._save()
                LOG.info("controller started (pid %d)", child.pid)
                while child.poll() is None and not self.stop.is_set():
                    self.poll()
                    self.stop.wait(POLL)
                if self.stop.is_set():
                    _end(child)
                    break
                code = child.wait()
                how = f"exit {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
                code_text = f"{how} after {time.monotonic() - started:.1f} s"
            ran_for = time.monotonic() - started
            failures = self.backoff.failures_after(failures, ran_for)
            delay = self.backoff.delay(failures)
            status.restarts += 1
            status.last_exit, status.answering = code_text, False
            self._save()
            LOG.warning("controller ended (%s): restarting in %.1f s", status.last_exit, delay)
            self.stop.wait(delay)
        status.child_pid, status.answering = 0, False
        self._save()
        LOG.info("supervisor %d stopped", status.pid)
        return 0

    def _save(self) -> None:
        try:
            self.status.save(self.root)
        except OSError as exc:  # status is for people; the controller matters more
            LOG.warning("cannot write %s: %s", STATUS, exc)


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    user, _, password = Path(args.credentials).read_text().splitlines()[0].partition(":")
    with socket.socket(fileno=os.dup(args.rest_fd)) as listener:
        port = int(listener.getsockname()[1])
    client = VnetsClient(f"http://127.0.0.1:{port}", user, password, timeout=2.0)
    supervisor = Supervisor(root, client, lambda: _start_child(args), args.resync_interval)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop.set())
    signal.signal(signal.SIGINT, lambda *_: supervisor.stop.set())
    return supervisor.run()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m l2sm_lab.supervisor", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--root", type=Path, required=True, help="the lab's state directory")
    parser.add_argument("--netns", required=True, help="the controller's namespace")
    parser.add_argument("--rest-fd", type=int, required=True, help="the REST API's listening socket")
    parser.add_argument("--credentials", type=Path, required=True, help="file holding user:password")
    parser.add_argument("--of-port", type=int, default=6633)
    parser.add_argument("--resync-interval", type=float, default=10.0, help="update-status, in seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code = run(parse_args(argv))
    except Exception:
        LOG.exception("supervisor failed")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
