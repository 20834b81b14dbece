"""The lab's SDN controller process: OpenFlow 1.3 (os-ken, `l2sm_lab.ofapp`) and the vnets
REST API (`l2sm_lab.vnets_api.VnetsFront`) in one process, state in memory only (as ONOS:
a restart loses every network and port).

    python -m l2sm_lab.controller --of-port 6633 [--of-host 0.0.0.0] \
        (--rest-fd FD | --rest-port PORT) --credentials FILE

FILE holds `user:password` and must not be readable by group or others. With --rest-fd the
REST API serves on an inherited, bound and listening TCP socket: the lab binds it on the
host's loopback and starts this process with `ip netns exec <controller namespace>`, so
OpenFlow listens in that namespace while REST stays reachable from the host.

os-ken 4.x runs its hub on native threads by default (OSKEN_HUB_TYPE=native); this process
pins that, so no eventlet monkey patching happens and the REST front's threads may hand
work to the OpenFlow app (`reprogram` only queues an event for the app's loop). SIGTERM or
SIGINT stops the REST server and exits 0; the switches keep their flows (fail_mode=secure).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import socket
import stat
import sys
import threading
from pathlib import Path
from typing import Any

LOG = logging.getLogger("l2sm_lab.controller")


class ControllerFailed(Exception):
    pass


def read_credentials(path: Path) -> tuple[str, str]:
    """`user:password` from path (first line), refused when group or others may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ControllerFailed(f"cannot read the credentials file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ControllerFailed(
            f"{path} is open to group or others (mode {stat.S_IMODE(mode):04o}): chmod 0600"
        )
    line = text.splitlines()[0] if text else ""
    user, sep, password = line.partition(":")
    if not sep or not user or not password:
        raise ControllerFailed(f"{path} must hold one line user:password")
    return user, password


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m l2sm_lab.controller", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--of-port", type=int, default=6633, help="OpenFlow listen port (default 6633)")
    parser.add_argument("--of-host", default="0.0.0.0", help="OpenFlow listen address (default 0.0.0.0)")
    rest = parser.add_mutually_exclusive_group(required=True)
    rest.add_argument("--rest-fd", type=int, help="an inherited, listening TCP socket for the REST API")
    rest.add_argument("--rest-port", type=int, help="serve the REST API on 127.0.0.1:PORT")
    parser.add_argument("--credentials", type=Path, required=True, help="file holding user:password")
    parser.add_argument("--debug", action="store_true", help="log every learned MAC")
    return parser.parse_args(argv)


def _rest_socket(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ControllerFailed(f"--rest-fd {fd} is not a socket: {exc}") from exc
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise ControllerFailed(f"--rest-fd {fd} is not a TCP socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise ControllerFailed(f"--rest-fd {fd} is not listening")
    sock.set_inheritable(False)
    return sock


def _configure_os_ken(of_host: str, of_port: int) -> None:
    from os_ken import cfg
    from os_ken.base import app_manager  # first: os_ken's imports are circular
    from os_ken.controller import controller  # registers the ofp options

    del app_manager, controller
    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", of_host)
    cfg.CONF.set_override("ofp_tcp_listen_port", of_port)


def run(args: argparse.Namespace) -> int:
    # Before the first os_ken import: its hub type is read once, at import.
    os.environ["OSKEN_HUB_TYPE"] = "native"
    from l2sm_lab.vnets_api import VnetsFront

    user, password = read_credentials(args.credentials)
    if not 1 <= args.of_port <= 65535:
        raise ControllerFailed(f"--of-port {args.of_port} is not a port number")
    if args.rest_fd is not None:
        front = VnetsFront(user, password, sock=_rest_socket(args.rest_fd))
    else:
        front = VnetsFront(user, password, host="127.0.0.1", port=args.rest_port)

    _configure_os_ken(args.of_host, args.of_port)
    from os_ken.base.app_manager import AppManager

    from l2sm_lab import ofapp

    manager = AppManager.get_instance()
    manager.load_apps([ofapp.__name__])
    contexts = manager.create_contexts()
    services: list[Any] = manager.instantiate_apps(store=front, **contexts)
    app = next(a for a in manager.applications.values() if isinstance(a, ofapp.L2smForwarding))

    done = threading.Event()
    outcome: dict[str, int] = {}

    def finish(code: int, why: str) -> None:
        if not done.is_set():
            outcome["code"] = code
            LOG.info("stopping: %s", why)
            done.set()

    def watch(thread: Any) -> None:
        thread.join()
        finish(1, f"os-ken service {getattr(thread, 'name', thread)} ended (see the log above)")

    for thread in services:
        threading.Thread(target=watch, args=(thread,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: finish(0, "SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: finish(0, "SIGINT"))

    front.on_change = app.reprogram
    front.start()
    LOG.info("REST on %s, OpenFlow on %s:%d", front.url, args.of_host, args.of_port)
    while not done.wait(0.5):
        pass
    front.stop()
    return outcome.get("code", 0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        logging.getLogger("os_ken").setLevel(logging.WARNING)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a stack dump of every thread, on demand
    try:
        code = run(args)
    except ControllerFailed as exc:
        LOG.error("%s", exc)
        code = 2
    except Exception:
        LOG.exception("controller failed")
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # os-ken's hub threads (the OpenFlow server, each switch's loops) are not daemons and
    # cannot be stopped: leave without waiting for them.
    os._exit(code)


if __name__ == "__main__":
    main()
