"""Ping and traceroute in pure Python: the CDN KNF charms' `check-connectivity` action and the lab.

The KNF workload images carry no ping or traceroute, so the charm container (which shares the
pod's network namespace) sends the probes itself:

- `ping` sends ICMP echo requests on a raw socket (needs CAP_NET_RAW) or, when that is refused,
  on an unprivileged ICMP datagram socket (allowed when the process's group is in
  net.ipv4.ping_group_range). The reply's TTL comes from its IP header (raw) or from the
  IP_RECVTTL ancillary data (datagram).
- `traceroute` sends UDP probes to ports 33434 and up with increasing IP TTLs, and reads the
  ICMP time-exceeded / port-unreachable answers on a raw ICMP socket or, without CAP_NET_RAW,
  from the UDP socket's error queue (IP_RECVERR). Answers are matched to probes by the ports
  of the UDP header the ICMP message quotes (or, from the error queue, the original destination).
- `check` runs both and flattens them into an action result (dashed keys, string values).

Targets are IPv4 unicast addresses only: host names are refused rather than resolved, so an
action never waits on DNS and always probes the address the operator read. Every call is bounded
in time by its timeouts; socket failures (no permission, no route) come back in `errors`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import select
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from l2sm_core.validation import shown, unicast_ipv4

# Linux constants the socket module does not export on every version.
IP_RECVERR = 11
IP_RECVTTL = 12
SOL_RAW = 255
ICMP_FILTER = 1
SO_EE_ORIGIN_ICMP = 2
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
PORT_UNREACH = 3

TRACE_BASE_PORT = 33434
# Probes in flight at once, as traceroute's default (-N 16): a wave of TTLs costs one timeout.
TRACE_WAVE = 16
PING_PAYLOAD = 56  # bytes of echo data, as ping's default

COUNT_MAX = 100
TIMEOUT_MAX = 10.0
INTERVAL_MAX = 2.0
MAX_HOPS_MAX = 64
PROBES_MAX = 5

# traceroute's marks for the destination-unreachable codes that end a trace elsewhere.
_UNREACH = {
    0: ("!N", "network unreachable"),
    1: ("!H", "host unreachable"),
    2: ("!P", "protocol unreachable"),
    3: ("!P", "port unreachable"),
    4: ("!F", "fragmentation needed"),
    9: ("!X", "network administratively prohibited"),
    10: ("!X", "host administratively prohibited"),
    13: ("!X", "communication administratively prohibited"),
}
_LETTERS = re.compile(r"[A-Za-z]")


class PacketError(ValueError):
    """A received packet that is truncated, malformed or fails its checksum."""


# --- packets ---------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class IPv4Header:
    header_length: int
    total_length: int
    ttl: int
    protocol: int
    source: str
    destination: str


def parse_ipv4(packet: bytes, quoted: bool = False) -> tuple[IPv4Header, bytes]:
    """Split an IPv4 packet into its header and payload, honouring IHL (options).

    A quoted header (inside an ICMP error) is followed by only part of the original packet, so
    its total length is not held against the bytes present. The header checksum is not checked:
    the kernel drops packets whose header checksum fails before any socket sees them.
    """
    if len(packet) < 20:
        raise PacketError(f"IPv4 header truncated: {len(packet)} bytes")
    version, ihl = packet[0] >> 4, (packet[0] & 0x0F) * 4
    if version != 4:
        raise PacketError(f"not IPv4 (version {version})")
    (total,) = struct.unpack_from("!H", packet, 2)
    if ihl < 20 or len(packet) < ihl or total < ihl:
        raise PacketError(f"bad IPv4 header length {ihl} (total {total}, have {len(packet)})")
    if not quoted and total > len(packet):
        raise PacketError(f"IPv4 packet truncated: {len(packet)} of {total} bytes")
    header = IPv4Header(
        header_length=ihl,
        total_length=total,
        ttl=packet[8],
        protocol=packet[9],
        source=socket.inet_ntoa(packet[12:16]),
        destination=socket.inet_ntoa(packet[16:20]),
    )
    return header, packet[ihl:] if quoted else packet[ihl:total]


@dataclass(frozen=True)
class IcmpMessage:
    type: int
    code: int
    rest: bytes  # the 4 bytes after the checksum: identifier and sequence for echo
    payload: bytes

    @property
    def identifier(self) -> int:
        return struct.unpack("!H", self.rest[:2])[0]

    @property
    def sequence(self) -> int:
        return struct.unpack("!H", self.rest[2:])[0]


def parse_icmp(data: bytes) -> IcmpMessage:
    """Parse an ICMP message, refusing it unless its checksum verifies."""
    if len(data) < 8:
        raise PacketError(f"ICMP message truncated: {len(data)} bytes")
    # Summing a message that carries its checksum gives 0 when it is intact.
    if checksum(data) != 0:
        raise PacketError("ICMP checksum mismatch")
    return IcmpMessage(type=data[0], code=data[1], rest=data[4:8], payload=data[8:])


def echo_request(identifier: int, sequence: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, identifier, sequence)
    total = checksum(header + payload)
    return header[:2] + struct.pack("!H", total) + header[4:] + payload


def quoted_transport(message: IcmpMessage) -> tuple[IPv4Header, bytes]:
    """The original IP header and first 8 transport bytes an ICMP error quotes (RFC 792)."""
    if message.type not in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED):
        raise PacketError(f"ICMP type {message.type} quotes no packet")
    header, rest = parse_ipv4(message.payload, quoted=True)
    if len(rest) < 8:
        raise PacketError(f"quoted transport header truncated: {len(rest)} bytes")
    return header, rest[:8]


def describe_error(message: IcmpMessage) -> str:
    if message.type == ICMP_TIME_EXCEEDED:
        return "time exceeded"
    if message.type == ICMP_DEST_UNREACH:
        return _UNREACH.get(message.code, ("!", f"destination unreachable (code {message.code})"))[1]
    return f"ICMP type {message.type} code {message.code}"


# --- input validation -------------------------------------------------------------------------


def validate_target(value: Any) -> str:
    """The target as a unicast IPv4 address; names are refused, never resolved (no DNS in an action)."""
    try:
        return str(unicast_ipv4(value))
    except ValueError as exc:
        hint = ""
        if isinstance(value, str) and _LETTERS.search(value):
            hint = " (host names are not resolved: give the IPv4 address)"
        raise ValueError(f"parameter 'target': {exc}{hint}") from None


def _integer(name: str, value: Any, low: int, high: int) -> int:
    # bool is an int to Python but never what the caller meant.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"parameter '{name}': {shown(value)} is not an integer ({low} to {high})")
    if not low <= value <= high:
        raise ValueError(f"parameter '{name}': {value} is out of range ({low} to {high})")
    return value


def _seconds(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"parameter '{name}': {shown(value)} is not a number of seconds")
    if not low <= value <= high:
        raise ValueError(f"parameter '{name}': {value} is out of range ({low} to {high} seconds)")
    return float(value)


def validate_count(value: Any) -> int:
    return _integer("count", value, 1, COUNT_MAX)


# --- sockets ----------------------------------------------------------------------------------


def _raw_icmp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)


def _dgram_icmp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)


def _only_icmp_types(sock: socket.socket, *types: int) -> None:
    # A raw ICMP socket sees every ICMP packet of the namespace: let the kernel drop the rest.
    allowed = sum(1 << t for t in types)
    with contextlib.suppress(OSError):  # only an optimisation: the parsing filters anyway
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~allowed & 0xFFFFFFFF))


def _wait_readable(sock: socket.socket, until: float) -> bool:
    remaining = until - time.monotonic()
    if remaining <= 0:
        return False
    readable, _, _ = select.select([sock], [], [], remaining)
    return bool(readable)


def _os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- ping -------------------------------------------------------------------------------------


@dataclass
class PingResult:
    target: str
    sent: int = 0
    received: int = 0
    loss: float = 100.0  # percent
    rtt_min: float | None = None  # milliseconds
    rtt_avg: float | None = None
    rtt_max: float | None = None
    ttl: int | None = None  # the replies' most common TTL (the first seen on a tie)
    method: str = ""  # "raw" or "dgram": which ICMP socket carried the echoes
    errors: list[str] = field(default_factory=list)


def ping(target: str, count: int = 3, timeout: float = 1.0, interval: float = 0.2) -> PingResult:
    """Send `count` ICMP echo requests `interval` seconds apart to `target`.

    A reply counts when it comes within `timeout` seconds of its request, so the call returns
    within (count - 1) * interval + timeout seconds (plus scheduling). Raises ValueError for
    bad parameters; socket failures are reported in the result's `errors`.
    """
    target = validate_target(target)
    count = validate_count(count)
    timeout = _seconds("timeout", timeout, 0.01, TIMEOUT_MAX)
    interval = _seconds("interval", interval, 0.0, INTERVAL_MAX)
    result = PingResult(target=target)
    try:
        sock, result.method = _raw_icmp_socket(), "raw"
    except OSError as raw_error:
        try:
            sock, result.method = _dgram_icmp_socket(), "dgram"
        except OSError as dgram_error:
            result.errors.append(
                "cannot open an ICMP socket: a raw one needs CAP_NET_RAW "
                f"({_os_error(raw_error)}) and a datagram one needs the group in "
                f"net.ipv4.ping_group_range ({_os_error(dgram_error)})"
            )
            return result
    with sock:
        _ping(sock, result, count, timeout, interval)
    return result


def _ping(sock: socket.socket, result: PingResult, count: int, timeout: float, interval: float) -> None:
    raw = result.method == "raw"
    if raw:
        _only_icmp_types(sock, ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    # A random identifier and payload tell our replies from another ping's on the raw socket;
    # the datagram socket replaces the identifier with its own, so there sequence and payload match.
    identifier = int.from_bytes(os.urandom(2), "big")
    first_sequence = int.from_bytes(os.urandom(2), "big")
    payload = os.urandom(16) + bytes(PING_PAYLOAD - 16)
    sent_at: dict[int, float] = {}
    rtts: dict[int, float] = {}
    ttls: list[int] = []
    errors: dict[str, None] = {}  # ordered set: one line per distinct failure

    next_send = time.monotonic()
    end = next_send
    index = 0
    while True:
        now = time.monotonic()
        if index < count and now >= next_send:
            sequence = (first_sequence + index) & 0xFFFF
            try:
                sock.sendto(echo_request(identifier, sequence, payload), (result.target, 0))
                sent_at[sequence] = time.perf_counter()
                result.sent += 1
            except OSError as exc:
                errors[f"send: {_os_error(exc)}"] = None
            index += 1
            next_send += interval
            end = now + timeout
            continue
        if index >= count and (now >= end or len(rtts) == len(sent_at)):
            break
        # Wake for the next send or, after the last, the last reply's deadline (not before).
        until = next_send if index < count else end
        if not _wait_readable(sock, until):
            continue
        try:
            data, ancillary, _, address = sock.recvmsg(4096, socket.CMSG_SPACE(4))
        except OSError as exc:  # e.g. a pending ICMP error on the datagram socket
            errors[f"receive: {_os_error(exc)}"] = None
            continue
        received = time.perf_counter()
        try:
            if raw:
                header, data = parse_ipv4(data)
                if header.protocol != socket.IPPROTO_ICMP:
                    continue
                ttl, source = header.ttl, header.source
            else:
                ttl, source = _ancillary_ttl(ancillary), address[0]
            message = parse_icmp(data)
        except PacketError:
            continue
        if message.type == ICMP_ECHO_REPLY:
            sequence = message.sequence
            if (
                source != result.target
                or (raw and message.identifier != identifier)
                or message.payload != payload
                or sequence not in sent_at
                or sequence in rtts  # a duplicate
            ):
                continue
            rtt = (received - sent_at[sequence]) * 1000
            if rtt > timeout * 1000:
                continue  # late: counted lost, as promised to the caller
            rtts[sequence] = rtt
            if ttl is not None:
                ttls.append(ttl)
        elif raw and _quotes_our_echo(message, result.target, identifier, sent_at):
            # Someone on the way answers for the target: say who and why.
            errors[f"{source}: {describe_error(message)}"] = None

    result.received = len(rtts)
    result.loss = round(100.0 * (result.sent - result.received) / result.sent, 1) if result.sent else 100.0
    if rtts:
        values = list(rtts.values())
        result.rtt_min = round(min(values), 3)
        result.rtt_avg = round(sum(values) / len(values), 3)
        result.rtt_max = round(max(values), 3)
    if ttls:
        result.ttl = Counter(ttls).most_common(1)[0][0]
    result.errors.extend(errors)


def _quotes_our_echo(message: IcmpMessage, target: str, identifier: int, sent_at: dict[int, float]) -> bool:
    try:
        header, transport = quoted_transport(message)
    except PacketError:
        return False
    kind, _, _, quoted_id, quoted_seq = struct.unpack("!BBHHH", transport)
    return (
        header.protocol == socket.IPPROTO_ICMP
        and header.destination == target
        and kind == ICMP_ECHO_REQUEST
        and quoted_id == identifier
        and quoted_seq in sent_at
    )


def _ancillary_ttl(ancillary: Sequence[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == socket.IP_TTL and len(data) >= 4:
            return struct.unpack("i", data[:4])[0]
    return None


# --- traceroute -------------------------------------------------------------------------------


@dataclass
class Hop:
    ttl: int
    address: str | None = None  # None: no probe of this TTL was answered ('*')
    rtt: float | None = None  # milliseconds, the fastest answered probe
    answered: int = 0
    note: str = ""  # traceroute's mark when the trace ends here unreached: !N, !H, !X...


@dataclass
class TraceResult:
    target: str
    hops: list[Hop] = field(default_factory=list)
    reached: bool = False
    method: str = ""  # "raw" (ICMP socket) or "recverr" (the UDP socket's error queue)
    errors: list[str] = field(default_factory=list)


@dataclass
class _Probe:
    ttl: int
    port: int
    sent: bool = False
    sent_at: float = 0.0
    source: str | None = None  # who answered
    rtt: float | None = None
    icmp_type: int | None = None
    code: int = 0

    @property
    def terminal(self) -> bool:
        # Any destination-unreachable ends the trace: the target's port-unreachable or a refusal.
        return self.icmp_type == ICMP_DEST_UNREACH


def traceroute(target: str, max_hops: int = 30, probes: int = 3, timeout: float = 1.0) -> TraceResult:
    """Trace the route to `target` with UDP probes to ports 33434 and up.

    Probes go out in waves of up to 16, each wave waiting at most `timeout` seconds for its
    answers, and the trace stops at the first wave that reaches the target (or is told it is
    unreachable), so the call returns within ceil(max_hops * probes / 16) * timeout seconds.
    Hops are listed in TTL order up to the one that ended the trace (all `max_hops` if none did).
    Routers rate-limit the ICMP errors they send, so a hop probed too often shows as '*'.
    Raises ValueError for bad parameters; socket failures are reported in `errors`.
    """
    target = validate_target(target)
    max_hops = _integer("max-hops", max_hops, 1, MAX_HOPS_MAX)
    probes = _integer("probes", probes, 1, PROBES_MAX)
    timeout = _seconds("timeout", timeout, 0.01, TIMEOUT_MAX)
    result = TraceResult(target=target)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        icmp: socket.socket | None = None
        try:
            icmp, result.method = _raw_icmp_socket(), "raw"
            _only_icmp_types(icmp, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)
        except OSError:
            # Without CAP_NET_RAW the kernel still queues the ICMP errors on the UDP socket.
            udp.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            result.method = "recverr"
        try:
            udp.bind(("0.0.0.0", 0))
            _trace(udp, icmp, result, max_hops, probes, timeout)
        finally:
            if icmp is not None:
                icmp.close()
    return result


def _trace(
    udp: socket.socket,
    icmp: socket.socket | None,
    result: TraceResult,
    max_hops: int,
    probes: int,
    timeout: float,
) -> None:
    source_port = udp.getsockname()[1]
    ttls = [ttl for ttl in range(1, max_hops + 1) for _ in range(probes)]
    # One destination port per probe: the port an ICMP error quotes says which probe it answers.
    plan = [_Probe(ttl, TRACE_BASE_PORT + i) for i, ttl in enumerate(ttls)]
    by_port = {p.port: p for p in plan}
    errors: dict[str, None] = {}  # ordered set
    listen = icmp if icmp is not None else udp
    failed = False
    for start in range(0, len(plan), TRACE_WAVE):
        wave = plan[start : start + TRACE_WAVE]
        for probe in wave:
            udp.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, probe.ttl)
            if not _send_probe(udp, result.target, probe, errors):
                failed = True  # a local failure (no route): every further probe would fail alike
                break
        until = time.monotonic() + timeout
        while not failed and not _wave_done(wave, plan) and _wait_readable(listen, until):
            if icmp is not None:
                _read_raw(icmp, result.target, source_port, by_port)
            else:
                _read_errqueue(udp, result.target, by_port)
        if failed or _terminal_ttl(plan) is not None:
            break
    _hops(result, plan, errors)
    result.errors.extend(errors)


def _terminal_ttl(plan: list[_Probe]) -> int | None:
    return min((p.ttl for p in plan if p.terminal), default=None)


def _wave_done(wave: list[_Probe], plan: list[_Probe]) -> bool:
    # Done when every probe of this wave that can still matter has its answer.
    last = _terminal_ttl(plan)
    return all(p.source is not None for p in wave if p.sent and (last is None or p.ttl <= last))


def _hops(result: TraceResult, plan: list[_Probe], errors: dict[str, None]) -> None:
    last = _terminal_ttl(plan)
    if last is None:
        last = max((p.ttl for p in plan if p.sent), default=0)
    for ttl in range(1, last + 1):
        hop = Hop(ttl)
        answered = [p for p in plan if p.ttl == ttl and p.source is not None]
        if answered:
            hop.address = answered[0].source
            hop.answered = len(answered)
            hop.rtt = min(p.rtt for p in answered if p.rtt is not None)
        ends = [p for p in answered if p.terminal]
        if ends:
            reached = [p for p in ends if p.code == PORT_UNREACH and p.source == result.target]
            if reached:
                result.reached = True
                hop.address = reached[0].source
            else:
                hop.address = ends[0].source
                hop.note, reason = _UNREACH.get(ends[0].code, ("!", f"unreachable (code {ends[0].code})"))
                errors[f"hop {ttl} ({hop.address}): {reason}"] = None
        result.hops.append(hop)


def _send_probe(udp: socket.socket, target: str, probe: _Probe, errors: dict[str, None]) -> bool:
    for attempt in range(2):
        try:
            probe.sent_at = time.perf_counter()
            udp.sendto(bytes(32), (target, probe.port))
            probe.sent = True
            return True
        except OSError as exc:
            # With IP_RECVERR an earlier probe's ICMP error is also raised, once, by the next send:
            # that is no failure of this probe, so send it again.
            if attempt == 0 and exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                continue
            errors[f"send: {_os_error(exc)}"] = None
    return False


def _answer(probe: _Probe | None, source: str, icmp_type: int, code: int) -> None:
    if probe is None or not probe.sent or probe.source is not None:
        return  # not ours, or a duplicate
    probe.source = source
    probe.rtt = round((time.perf_counter() - probe.sent_at) * 1000, 3)
    probe.icmp_type = icmp_type
    probe.code = code


def _read_raw(icmp: socket.socket, target: str, source_port: int, by_port: dict[int, _Probe]) -> None:
    try:
        header, data = parse_ipv4(icmp.recv(4096))
        message = parse_icmp(data)
        quoted, transport = quoted_transport(message)
    except (OSError, PacketError):
        return
    sport, dport = struct.unpack("!HH", transport[:4])
    if quoted.protocol == socket.IPPROTO_UDP and quoted.destination == target and sport == source_port:
        _answer(by_port.get(dport), header.source, message.type, message.code)


def _read_errqueue(udp: socket.socket, target: str, by_port: dict[int, _Probe]) -> None:
    try:
        _, ancillary, _, address = udp.recvmsg(512, 512, MSG_ERRQUEUE)
    except OSError:
        # Readable with an empty error queue: a datagram someone sent to our port. Drop it,
        # or select would keep waking on it until the wave's deadline.
        with contextlib.suppress(OSError):
            udp.recv(512, socket.MSG_DONTWAIT)
        return
    for level, kind, data in ancillary:
        if level != socket.IPPROTO_IP or kind != IP_RECVERR or len(data) < 16 + 8:
            continue
        # struct sock_extended_err, then the offender's sockaddr_in (SO_EE_OFFENDER).
        _, origin, icmp_type, code, _, _, _ = struct.unpack_from("=IBBBBII", data)
        family = struct.unpack_from("=H", data, 16)[0]
        if origin == SO_EE_ORIGIN_ICMP and family == socket.AF_INET and address[0] == target:
            _answer(by_port.get(address[1]), socket.inet_ntoa(data[20:24]), icmp_type, code)


# --- the action -------------------------------------------------------------------------------


def check(target: str, count: int = 3, max_hops: int = 16, timeout: float = 1.0) -> dict[str, str]:
    """Ping and trace `target`: the `check-connectivity` action's result.

    Keys are dashed and values strings, as Juju action results are: target, sent, received,
    loss-percent, ttl, rtt-min-ms, rtt-avg-ms, rtt-max-ms (these four only when a reply came
    back), hops ('10.0.1.1 10.0.2.10', '*' for a hop that did not answer), hop-rtts-ms,
    hop-count, reached ('true'/'false') and errors (only when there are any; '; '-joined).
    Raises ValueError naming the parameter when an input is refused, before any probe is sent.
    """
    target = validate_target(target)
    count = validate_count(count)
    max_hops = _integer("max-hops", max_hops, 1, MAX_HOPS_MAX)
    timeout = _seconds("timeout", timeout, 0.01, TIMEOUT_MAX)
    echo = ping(target, count=count, timeout=timeout)
    trace = traceroute(target, max_hops=max_hops, timeout=timeout)
    results = {
        "target": target,
        "sent": str(echo.sent),
        "received": str(echo.received),
        "loss-percent": f"{echo.loss:g}",
    }
    if echo.ttl is not None:
        results["ttl"] = str(echo.ttl)
    for key, value in (("min", echo.rtt_min), ("avg", echo.rtt_avg), ("max", echo.rtt_max)):
        if value is not None:
            results[f"rtt-{key}-ms"] = f"{value:.3f}"
    results["hops"] = " ".join(hop.address or "*" for hop in trace.hops)
    results["hop-rtts-ms"] = " ".join("*" if hop.rtt is None else f"{hop.rtt:.3f}" for hop in trace.hops)
    results["hop-count"] = str(len(trace.hops))
    results["reached"] = "true" if trace.reached else "false"
    errors = [f"ping: {e}" for e in echo.errors] + [f"traceroute: {e}" for e in trace.errors]
    if errors:
        results["errors"] = "; ".join(errors)
    return results


def main(argv: list[str] | None = None) -> int:
    """`python -m l2sm_core.probe TARGET [--count N]`: the action's result as JSON, for the lab.

    Exits 0 when the target answered pings and the trace reached it, 1 otherwise, 2 on bad input.
    """
    parser = argparse.ArgumentParser(prog="python -m l2sm_core.probe", description=main.__doc__)
    parser.add_argument("target")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--max-hops", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        results = check(args.target, args.count, args.max_hops, args.timeout)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(results, indent=2))
    return 0 if results["reached"] == "true" and results["received"] != "0" else 1


def as_dict(result: PingResult | TraceResult) -> dict[str, Any]:
    """A result as plain JSON-able data (for logs and the lab)."""
    return asdict(result)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
