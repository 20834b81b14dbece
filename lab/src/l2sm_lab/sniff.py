"""Frames on the wire, for the isolation checks: send marked frames from one unit's interface
and count, on others, the frames that carry the mark (raw AF_PACKET sockets, so no capture
tool is needed).

Kinds of frame sent:
- `broadcast`: to ff:ff:ff:ff:ff:ff (every port of a flood domain gets it);
- `unknown-unicast`: to a unicast MAC no one has (flooded like a broadcast);
- `arp`: an ARP who-has for an address (the mark) that no unit holds.

Run inside a namespace: `ip netns exec NS python -m l2sm_lab.sniff listen net1 MARK 2`
prints the count; `... send net1 MARK broadcast 5` sends.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
# IEEE 802 local experimental ethertype: nothing on the lab's networks speaks it.
ETH_P_MARK = 0x88B5
BROADCAST = b"\xff" * 6
UNKNOWN = bytes.fromhex("02cafe00beef")  # locally administered, held by no interface
KINDS = ("broadcast", "unknown-unicast", "arp")


def _mac(iface: str) -> bytes:
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def marked_frames(iface: str, mark: str, kind: str) -> bytes:
    src = _mac(iface)
    if kind == "arp":
        target = ipaddress.IPv4Address(mark).packed
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src, b"\0\0\0\0", b"\0" * 6, target)
        return BROADCAST + src + struct.pack("!H", ETH_P_ARP) + body
    dst = BROADCAST if kind == "broadcast" else UNKNOWN
    return dst + src + struct.pack("!H", ETH_P_MARK) + mark.encode().ljust(46, b"\0")


def carries(frame: bytes, mark: str) -> bool:
    if len(frame) < 14:
        return False
    (ethertype,) = struct.unpack("!H", frame[12:14])
    if ethertype == ETH_P_MARK:
        return frame[14:].rstrip(b"\0") == mark.encode()
    if ethertype == ETH_P_ARP and len(frame) >= 42:
        try:
            return frame[38:42] == ipaddress.IPv4Address(mark).packed
        except ValueError:
            return False
    return False


def send(iface: str, mark: str, kind: str, count: int, gap: float = 0.05) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        frame = marked_frames(iface, mark, kind)
        for _ in range(count):
            s.send(frame)
            time.sleep(gap)


def listen(iface: str, mark: str, seconds: float, ready: object = None) -> int:
    """Count marked frames arriving on iface for `seconds` (prints READY once listening)."""
    seen = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as s:
        s.bind((iface, 0))
        print("READY", flush=True) if ready else None
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([s], [], [], left)[0]:
                break
            frame, address = s.recvfrom(65535)
            # Frames this interface sent itself are PACKET_OUTGOING (4): not arrivals.
            if address[2] != socket.PACKET_OUTGOING and carries(frame, mark):
                seen += 1
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m l2sm_lab.sniff")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("listen")
    p.add_argument("iface")
    p.add_argument("mark")
    p.add_argument("seconds", type=float)
    p = sub.add_parser("send")
    p.add_argument("iface")
    p.add_argument("mark")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("count", type=int)
    args = parser.parse_args(argv)
    if args.command == "listen":
        print(json.dumps({"iface": args.iface, "seen": listen(args.iface, args.mark, args.seconds, True)}))
    else:
        send(args.iface, args.mark, args.kind, args.count)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
