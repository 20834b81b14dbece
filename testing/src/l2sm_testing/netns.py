"""Running test code inside a network namespace the test made (`ip netns add`)."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any

CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)


def in_netns(
    ns: str, call: Callable[[], Any], *, before: Callable[[], None] | None = None, timeout: float = 60
) -> Any:
    """call() in a thread that joined `ns` (setns is per thread, so the test process stays
    where it is, and coverage sees the call); `before` runs first in that thread (e.g. to drop
    a capability). Sockets made there stay in `ns`. Its exception is raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _LIBC.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            if before is not None:
                before()
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the call in {ns} did not return within {timeout} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
