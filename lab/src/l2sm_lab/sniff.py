"""Traffic on the wire, for the lab's isolation and firewall checks: marked frames sent from one
unit's interface and counted on others (raw AF_PACKET sockets, so no capture tool is needed),
and a TCP listener and client that record what they exchanged.

Kinds of frame sent:
- `broadcast`: to ff:ff:ff:ff:ff:ff (every port of a flood domain gets it);
- `unknown-unicast`: to a unicast MAC no one has (flooded like a broadcast);
- `arp`: an ARP who-has for an address (the mark) that no unit holds;
- `unicast`: to a given MAC (`--to`): a member's (delivered to it) or one of another network's.

Run inside a namespace: `ip netns exec NS python -m l2sm_lab.sniff listen net1 MARK 2`
prints the count (several marks: `listen net1 M1 M2 M3 2`, counted apart; `--until-eof`
stops at the end of stdin, within the seconds given); `... send net1 MARK broadcast 5`
sends. `serve PORT` accepts TCP connections until stdin ends, answers each with ACK + what
it read and prints them; `connect HOST PORT TIMEOUT --send TEXT` prints what came back.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import re
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
# IEEE 802 local experimental ethertype: nothing on the lab's networks speaks it.
ETH_P_MARK = 0x88B5
BROADCAST = b"\xff" * 6
UNKNOWN = bytes.fromhex("02cafe00beef")  # locally administered, held by no interface
KINDS = ("broadcast", "unknown-unicast", "arp")
UNICAST = "unicast"
SEND_KINDS = (*KINDS, UNICAST)
ACK = b"l2sm-lab-ack "
READ_MAX = 64 * 1024  # what `connect` keeps of the answer
SERVE_READ = 256  # what `serve` reads of each connection
SERVE_READ_SECONDS = 2.0
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def parse_mac(text: str) -> bytes:
    """`aa:bb:cc:dd:ee:ff` as 6 bytes; a multicast or all-zero MAC is refused (not unicast)."""
    value = text.strip().lower()
    if not _MAC.fullmatch(value):
        raise ValueError(f"{text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    raw = bytes.fromhex(value.replace(":", ""))
    if raw[0] & 1 or raw == b"\0" * 6:
        raise ValueError(f"{text} is not a unicast MAC address")
    return raw


def _mac(iface: str) -> bytes:
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def marked_frames(iface: str, mark: str, kind: str, dst: bytes | None = None) -> bytes:
    src = _mac(iface)
    if kind == "arp":
        target = ipaddress.IPv4Address(mark).packed
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src, b"\0\0\0\0", b"\0" * 6, target)
        return BROADCAST + src + struct.pack("!H", ETH_P_ARP) + body
    if kind == UNICAST:
        if dst is None:
            raise ValueError("a unicast frame needs its destination MAC")
    elif kind in KINDS:
        dst = BROADCAST if kind == "broadcast" else UNKNOWN
    else:
        raise ValueError(f"kind {kind!r}: one of {', '.join(SEND_KINDS)}")
    return dst + src + struct.pack("!H", ETH_P_MARK) + mark.encode().ljust(46, b"\0")


def carried_mark(frame: bytes, marks: Sequence[str]) -> str | None:
    """Which of `marks` the frame carries (our ethertype's payload, or an ARP's target)."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack("!H", frame[12:14])
    if ethertype == ETH_P_MARK:
        payload = frame[14:].rstrip(b"\0")
        return next((m for m in marks if payload == m.encode()), None)
    if ethertype == ETH_P_ARP and len(frame) >= 42:
        for m in marks:
            try:
                if frame[38:42] == ipaddress.IPv4Address(m).packed:
                    return m
            except ValueError:
                continue
    return None


def carries(frame: bytes, mark: str) -> bool:
    return carried_mark(frame, (mark,)) is not None


def send(iface: str, mark: str, kind: str, count: int, gap: float = 0.05, dst: bytes | None = None) -> None:
    frame = marked_frames(iface, mark, kind, dst)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        for _ in range(count):
            s.send(frame)
            time.sleep(gap)


def listen_marks(
    iface: str, marks: Sequence[str], seconds: float, ready: bool = False, stop_fd: int | None = None
) -> tuple[dict[str, int], bool]:
    """Frames arriving on iface carrying each mark, counted for `seconds` or until `stop_fd`
    reads end of file (prints READY once listening, when `ready`); and whether it was the
    end of file that stopped it."""
    seen = dict.fromkeys(marks, 0)
    stopped = False
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as s:
        s.bind((iface, 0))
        if ready:
            print("READY", flush=True)
        watched: list[int | socket.socket] = [s] if stop_fd is None else [s, stop_fd]
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable = select.select(watched, [], [], left)[0]
            if not readable:
                break
            if stop_fd is not None and stop_fd in readable and not os.read(stop_fd, 4096):
                watched.remove(stop_fd)
                stopped = True
                deadline = time.monotonic()  # drain what already arrived, then stop
            if s not in readable:
                continue
            frame, address = s.recvfrom(65535)
            # Frames this interface sent itself are PACKET_OUTGOING (4): not arrivals.
            if address[2] == socket.PACKET_OUTGOING:
                continue
            mark = carried_mark(frame, marks)
            if mark is not None:
                seen[mark] += 1
        # What the kernel queued before the stop: still arrivals within the window.
        s.setblocking(False)
        while True:
            try:
                frame, address = s.recvfrom(65535)
            except BlockingIOError:
                break
            mark = carried_mark(frame, marks)
            if address[2] != socket.PACKET_OUTGOING and mark is not None:
                seen[mark] += 1
    return seen, stopped


def listen(iface: str, mark: str, seconds: float, ready: object = None) -> int:
    """Count marked frames arriving on iface for `seconds` (prints READY once listening)."""
    return listen_marks(iface, (mark,), seconds, bool(ready))[0][mark]


# -- TCP ---------------------------------------------------------------------------------------


def serve(listener: socket.socket, stop_fd: int, ready: bool = False) -> list[dict[str, str]]:
    """Accept connections on `listener` until `stop_fd` reads end of file: each is read (up to
    SERVE_READ bytes or SERVE_READ_SECONDS), answered with ACK + what was read, and recorded
    as {"peer": address, "data": text}, the connection counted even if nothing came."""
    seen: list[dict[str, str]] = []
    if ready:
        print("READY", flush=True)
    while True:
        readable = select.select([listener, stop_fd], [], [])[0]
        if listener in readable:
            conn, peer = listener.accept()
            with conn:
                conn.settimeout(SERVE_READ_SECONDS)
                try:
                    data = conn.recv(SERVE_READ)
                    conn.sendall(ACK + data)
                except OSError:
                    data = b""
                seen.append({"peer": str(peer[0]), "data": data.decode(errors="replace")})
        if stop_fd in readable and not os.read(stop_fd, 4096):
            return seen


def connect(host: str, port: int, timeout: float, payload: bytes) -> dict[str, object]:
    """Connect (within `timeout`), send `payload`, read the answer until the peer closes or
    `timeout` passes. `error` is "" or why: timeout, refused, unreachable, or the OS's words."""
    result: dict[str, object] = {"connected": False, "received": "", "error": ""}
    deadline = time.monotonic() + timeout
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        result["error"] = "timeout"
        return result
    except ConnectionRefusedError:
        result["error"] = "refused"
        return result
    except OSError as exc:
        result["error"] = (
            "unreachable"
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)
            else (exc.strerror or str(exc))
        )
        return result
    result["connected"] = True
    received = b""
    with conn:
        try:
            conn.sendall(payload)
            while len(received) < READ_MAX and (left := deadline - time.monotonic()) > 0:
                conn.settimeout(left)
                chunk = conn.recv(READ_MAX - len(received))
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass  # what came so far is the answer
        except OSError as exc:
            result["error"] = exc.strerror or str(exc)
    result["received"] = received.decode(errors="replace")
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m l2sm_lab.sniff")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("listen")
    p.add_argument("iface")
    p.add_argument("marks", nargs="+", metavar="mark")
    p.add_argument("seconds", type=float)
    p.add_argument("--until-eof", action="store_true", help="stop early at the end of stdin")
    p = sub.add_parser("send")
    p.add_argument("iface")
    p.add_argument("mark")
    p.add_argument("kind", choices=SEND_KINDS)
    p.add_argument("count", type=int)
    p.add_argument("--to", type=parse_mac, help="destination MAC (kind unicast)")
    p = sub.add_parser("serve")
    p.add_argument("port", type=int)
    p.add_argument("--bind", default="0.0.0.0")
    p = sub.add_parser("connect")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("timeout", type=float)
    p.add_argument("--send", default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "listen":
        stop = sys.stdin.fileno() if args.until_eof else None
        seen, stopped = listen_marks(args.iface, args.marks, args.seconds, True, stop)
        report = {"iface": args.iface, "seen": sum(seen.values()), "marks": seen}
        print(json.dumps({**report, "until": "eof" if stopped else "deadline"}))
    elif args.command == "send":
        if (args.kind == UNICAST) != (args.to is not None):
            parser.error("--to MAC goes with kind unicast, and only with it")
        send(args.iface, args.mark, args.kind, args.count, dst=args.to)
    elif args.command == "serve":
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((args.bind, args.port))
            listener.listen(16)
            print(json.dumps({"connections": serve(listener, sys.stdin.fileno(), True)}))
    else:
        print(json.dumps(connect(args.host, args.port, args.timeout, args.send.encode())))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
