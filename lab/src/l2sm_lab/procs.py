"""The lab's record (namespaces made, processes started, other modules' data) and its processes.

Everything the lab makes is written to `root/record.json` before the call that made it
returns, so `down` in a later process (or after a crash of `up`) can undo it from the record
alone. Processes are stopped only by recorded PID and only while /proc still shows the start
time recorded for it: a reused PID belongs to someone else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RECORD = "record.json"
LOCK = "lock"
LOCK_WAIT = 120.0  # seconds a command waits for another one on the same lab
# Root -> the open lock file: a process takes a lab's lock once (flock is per open file,
# so a second open in the same process would wait on itself).
_LOCKS: dict[Path, int] = {}
_LAB_ID = re.compile(r"[a-z][a-z0-9]{0,5}")
_ROLE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_PROC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Namespace names become files under /run/netns and appear in `ip` messages: keep them short.
MAX_NETNS = 32
_POLL = 0.01


class LabError(Exception):
    """Something the lab tried failed; the message says what and why."""


class NoLab(LabError):
    """No lab is recorded under the given root."""


@dataclass
class ProcInfo:
    name: str
    pid: int
    start: int
    argv: list[str]
    netns: str | None
    log: str


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None when there is no such PID."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (the command name, field 2, may hold spaces and parens)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def run(
    argv: Sequence[str], netns: str | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run a command (inside `netns` if given); LabError names it and its stderr on failure."""
    full = [*(["ip", "netns", "exec", netns] if netns else []), *argv]
    shown = " ".join(full)
    try:
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise LabError(f"{shown}: {full[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{shown}: no answer within {timeout} s") from exc
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or "no output"
        raise LabError(f"{shown} failed (exit {done.returncode}): {detail}")
    return done


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has ended; only its parent's wait is missing)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def lock_lab(root: Path, wait: float = LOCK_WAIT) -> None:
    """Hold the lab's lock for the rest of this process: two commands on one lab would each
    save the whole record, and the later save would lose what the other recorded."""
    if root in _LOCKS:
        return
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise LabError(
                    f"another l2sm-lab command has held {root} for {wait:.0f} s: try again"
                ) from None
            time.sleep(0.1)
            continue
        _LOCKS[root] = fd
        return


def unlock_lab(root: Path) -> None:
    fd = _LOCKS.pop(root, None)
    if fd is not None:
        os.close(fd)


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


class LabState:
    """The lab's record; every change is saved at once (atomically, mode 0600)."""

    def __init__(self, root: Path, lab: str, namespaces: list[str], procs: list[ProcInfo], data: dict):
        self.root = Path(root)
        self.lab = lab
        self.namespaces = namespaces
        self.procs = procs
        self.data: dict[str, Any] = data
        # Popen objects of processes this Python process started: those are waited for, not polled.
        self._children: dict[str, subprocess.Popen] = {}

    @property
    def record_path(self) -> Path:
        return self.root / RECORD

    @classmethod
    def create(cls, root: Path, lab: str) -> LabState:
        if not isinstance(lab, str) or not _LAB_ID.fullmatch(lab):
            raise ValueError(
                f"lab id {lab!r} is not valid: 1-6 characters, a lowercase letter then letters or digits"
            )
        root = Path(root).resolve()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_lab(root)
        if (root / RECORD).exists():
            raise LabError(
                f"a lab is already recorded in {root / RECORD}: "
                f"take it down first (l2sm-lab --root {root} down)"
            )
        state = cls(root, lab, [], [], {})
        state.save()
        return state

    @classmethod
    def load(cls, root: Path | None) -> LabState:
        if root is None:
            raise NoLab("no lab directory given, so no lab is recorded")
        root = Path(root).resolve()
        path = root / RECORD
        if root.is_dir():
            lock_lab(root)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise NoLab(f"no lab is recorded in {root} (no {RECORD}): bring one up first") from None
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read the lab record {path}: {exc}") from exc
        try:
            return cls(
                root,
                raw["lab"],
                list(raw["namespaces"]),
                [ProcInfo(**p) for p in raw["procs"]],
                dict(raw["data"]),
            )
        except (KeyError, TypeError) as exc:
            raise LabError(f"the lab record {path} is damaged ({exc}): remove what it lists by hand") from exc

    def save(self) -> None:
        body = {
            "lab": self.lab,
            "namespaces": self.namespaces,
            "procs": [asdict(p) for p in self.procs],
            "data": self.data,
        }
        text = json.dumps(body, indent=2, sort_keys=True) + "\n"
        tmp = self.root / f".{RECORD}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.record_path)

    # Namespaces

    def ns(self, role: str) -> str:
        if not isinstance(role, str) or not _ROLE.fullmatch(role):
            raise ValueError(f"namespace role {role!r} is not valid: lowercase letters, digits and '-'")
        name = f"{self.lab}-{role}"
        if len(name) > MAX_NETNS:
            raise ValueError(f"namespace name {name!r} is longer than {MAX_NETNS} characters")
        return name

    def make_netns(self, role: str) -> str:
        name = self.ns(role)
        if name in self.namespaces:
            raise LabError(f"namespace {name} was already made by this lab")
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.save()
        run(["ip", "link", "set", "lo", "up"], netns=name)
        return name

    def delete_netns(self, name: str) -> None:
        """Delete a namespace this lab made (its veths go with it) and forget it."""
        if name not in self.namespaces:
            raise LabError(f"namespace {name} was not made by lab {self.lab}: left alone")
        if netns_exists(name):
            self.end_stragglers(name)
            run(["ip", "netns", "delete", name])
        self.namespaces.remove(name)
        self.save()

    def end_stragglers(self, name: str, timeout: float = 3.0) -> None:
        """Processes still in one of our namespaces (a start that crashed before its PID was
        recorded, workers of a killed nginx, a child its SIGKILLed parent's PDEATHSIG has not
        ended yet): deleting the namespace would not end them, and a userspace switch would
        run on unseen. Ended by PID, inside our namespace only; returns once none runs."""
        if name not in self.namespaces:
            raise LabError(f"namespace {name} was not made by lab {self.lab}: left alone")
        listed = run(["ip", "netns", "pids", name], check=False).stdout.split()
        pids = [int(p) for p in listed if p.isdigit() and int(p) != os.getpid()]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(_running(pid) for pid in pids):
                time.sleep(0.05)
            pids = [pid for pid in pids if _running(pid)]
            if not pids:
                return

    # Processes

    def _proc(self, name: str) -> ProcInfo | None:
        return next((p for p in self.procs if p.name == name), None)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        netns: str | None = None,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        pass_fds: Iterable[int] = (),
    ) -> subprocess.Popen:
        """Start argv (in `netns`: `ip netns exec` keeps the PID) in its own session, so it
        outlives the process that ran `up`; stdout and stderr go to `log` (default
        root/logs/<name>.log). `env` is added to this process's environment."""
        if not _PROC_NAME.fullmatch(name):
            raise ValueError(f"process name {name!r} is not valid")
        if self._proc(name) is not None:
            raise LabError(f"a process named {name} is already recorded: stop it first")
        if not argv:
            raise ValueError("argv must not be empty")
        log = Path(log) if log is not None else self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        full = [*(["ip", "netns", "exec", netns] if netns else []), *argv]
        environ = {**os.environ, **(env or {})}
        with open(log, "ab") as out:
            try:
                child = subprocess.Popen(
                    full,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environ,
                    start_new_session=True,
                    pass_fds=tuple(pass_fds),
                )
            except OSError as exc:
                raise LabError(f"cannot start {name} ({' '.join(full)}): {exc}") from exc
        # Our unreaped child: its /proc entry stays (at worst a zombie) until we wait for it.
        started = start_time(child.pid)
        assert started is not None
        self.procs.append(ProcInfo(name, child.pid, started, list(full), netns, str(log)))
        self._children[name] = child
        self.save()
        return child

    def _ours(self, info: ProcInfo) -> bool:
        """The recorded process still exists and has not exited (not a zombie)."""
        fields = _stat_fields(info.pid)
        return fields is not None and int(fields[19]) == info.start and fields[0] != "Z"

    def alive(self, name: str) -> bool:
        info = self._proc(name)
        if info is None:
            return False
        child = self._children.get(name)
        if child is not None and child.poll() is not None:
            return False
        return self._ours(info)

    def _wait_gone(self, info: ProcInfo, timeout: float) -> bool:
        child = self._children.get(info.name)
        if child is not None:
            try:
                child.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while self._ours(info):
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL)
        return True

    def _signal(self, info: ProcInfo, sig: int) -> None:
        # Re-checked right before each signal: the PID may have been reused since.
        if not self._ours(info):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, sig)

    def stop(self, name: str, timeout: float = 5) -> bool:
        """SIGTERM, then SIGKILL after `timeout`, the recorded process; it leaves the record.
        False when it had already gone (or its PID now belongs to another process, which is
        left alone)."""
        info = self._proc(name)
        if info is None:
            raise LabError(f"no process named {name} is recorded")
        was_ours = self.alive(name)
        if was_ours:
            self._signal(info, signal.SIGTERM)
            if not self._wait_gone(info, timeout):
                self._signal(info, signal.SIGKILL)
                if not self._wait_gone(info, 5):
                    raise LabError(f"{name} (pid {info.pid}) survived SIGKILL")
        child = self._children.pop(name, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1)  # reap it even when it had exited by itself
        self.procs.remove(info)
        self.save()
        return was_ours

    # Teardown

    def teardown(self) -> None:
        """Stop every recorded process (last started first), delete every recorded namespace,
        delete the record. Tries everything, then raises one LabError naming every failure
        (the record then keeps what is left, so a second call retries it)."""
        errors: list[str] = []
        for info in reversed(list(self.procs)):
            try:
                self.stop(info.name)
            except (LabError, OSError) as exc:
                errors.append(f"process {info.name}: {exc}")
        for name in reversed(list(self.namespaces)):
            try:
                self.delete_netns(name)
            except (LabError, OSError) as exc:
                errors.append(f"namespace {name}: {exc}")
        if errors:
            with contextlib.suppress(OSError):
                self.save()
            raise LabError("teardown left some of the lab behind:\n  " + "\n  ".join(errors))
        self.data = {}
        self.record_path.unlink(missing_ok=True)
        unlock_lab(self.root)
