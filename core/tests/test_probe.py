"""Ping and traceroute, for real, across a router in network namespaces this test builds.

client 10.0.1.10/24 --- 10.0.1.1/24 router 10.0.2.1/24 --- 10.0.2.10/24 server: the PoC's
cache, router and content server. The probes run in a thread that has joined the client's
namespace (setns is per thread), so they are measured by coverage like any other code.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core import probe
from l2sm_core.probe import (
    PacketError,
    check,
    checksum,
    echo_request,
    parse_icmp,
    parse_ipv4,
    ping,
    quoted_transport,
    traceroute,
    validate_count,
    validate_target,
)
from l2sm_testing import netns
from l2sm_testing.bad_input import tricky_text

CLIENT, ROUTER, ROUTER2, SERVER = "10.0.1.10", "10.0.1.1", "10.0.2.1", "10.0.2.10"
NOBODY = "10.0.2.99"  # in the server's subnet, but no one has it
NO_ROUTE = "192.0.2.1"  # TEST-NET-1: the router has no route to it (and sends net-unreachable)

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="the probes need root (network namespaces, raw sockets) and iproute2's `ip`",
)


# --- packets, from crafted bytes ---------------------------------------------------------------


def ip_packet(
    payload: bytes, src: str, dst: str, ttl: int = 64, proto: int = 1, options: bytes = b""
) -> bytes:
    ihl = (20 + len(options)) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        20 + len(options) + len(payload),
        0,
        0,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + options + payload


def icmp(kind: int, code: int, rest: bytes, payload: bytes) -> bytes:
    body = struct.pack("!BBH", kind, code, 0) + rest + payload
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def test_checksum_known_values():
    # RFC 1071's worked example sums to 0xddf2: its checksum is the complement.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert checksum(b"") == 0xFFFF
    # Odd lengths are padded with a zero byte.
    assert checksum(b"\x01") == checksum(b"\x01\x00")


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=64))
def test_echo_request_verifies_and_round_trips(identifier, sequence, payload):
    message = parse_icmp(echo_request(identifier, sequence, payload))
    assert (message.type, message.code) == (8, 0)
    assert (message.identifier, message.sequence, message.payload) == (identifier, sequence, payload)


@given(st.binary(min_size=8, max_size=64), st.integers(0, 63), st.integers(1, 255))
def test_any_corruption_is_refused(payload, position, flip):
    data = bytearray(echo_request(1, 2, payload))
    position %= len(data)
    data[position] ^= flip
    # A one-byte change moves a 16-bit word by less than 0xffff, so the ones' complement sum
    # always changes: every single-byte corruption is caught.
    with pytest.raises(PacketError, match="checksum"):
        parse_icmp(bytes(data))


def test_parse_icmp_refuses_short_messages():
    with pytest.raises(PacketError, match="truncated"):
        parse_icmp(b"\x00\x00\xff")


def test_parse_ipv4_reads_ihl_ttl_and_addresses():
    reply = icmp(0, 0, struct.pack("!HH", 7, 9), b"data")
    header, payload = parse_ipv4(ip_packet(reply, SERVER, CLIENT, ttl=63, options=b"\x01\x01\x01\x00"))
    assert (header.header_length, header.ttl, header.protocol) == (24, 63, 1)
    assert (header.source, header.destination) == (SERVER, CLIENT)
    assert payload == reply  # options skipped
    # Bytes past the total length (link padding) are not part of the payload.
    _, padded = parse_ipv4(ip_packet(reply, SERVER, CLIENT) + b"\0\0\0\0")
    assert padded == reply


@pytest.mark.parametrize(
    ("packet", "fragment"),
    [
        (b"\x45" * 19, "truncated"),
        (b"\x65" + bytes(19), "not IPv4"),
        (b"\x44" + bytes(19), "header length"),  # IHL 4: less than 20 bytes
        (b"\x46\x00\x00\x14" + bytes(16), "header length"),  # IHL 6 in 20 bytes
        (b"\x45\x00\x00\x28" + bytes(16), "truncated"),  # says 40 bytes, has 20
    ],
)
def test_parse_ipv4_refuses_malformed(packet, fragment):
    with pytest.raises(PacketError, match=fragment):
        parse_ipv4(packet)


def time_exceeded(dst: str, sport: int, dport: int, quoted_length: int = 8) -> probe.IcmpMessage:
    udp = struct.pack("!HHHH", sport, dport, 40, 0)[:quoted_length]
    original = ip_packet(udp, CLIENT, dst, ttl=1, proto=17)[: 20 + quoted_length]
    return parse_icmp(icmp(11, 0, bytes(4), original))


def test_quoted_transport_gives_the_probe_ports():
    header, transport = quoted_transport(time_exceeded(SERVER, 40000, 33435))
    assert (header.protocol, header.destination) == (17, SERVER)
    assert struct.unpack("!HH", transport[:4]) == (40000, 33435)
    with pytest.raises(PacketError, match="truncated"):
        quoted_transport(time_exceeded(SERVER, 40000, 33435, quoted_length=4))
    with pytest.raises(PacketError, match="quotes no packet"):
        quoted_transport(parse_icmp(echo_request(1, 1, b"")))


def test_describe_error():
    def message(kind: int, code: int) -> probe.IcmpMessage:
        return probe.IcmpMessage(kind, code, bytes(4), b"")

    assert probe.describe_error(message(11, 0)) == "time exceeded"
    assert probe.describe_error(message(3, 1)) == "host unreachable"
    assert probe.describe_error(message(3, 7)) == "destination unreachable (code 7)"
    assert probe.describe_error(message(5, 1)) == "ICMP type 5 code 1"


def test_ancillary_ttl():
    ttl = struct.pack("i", 63)
    assert probe._ancillary_ttl([(socket.IPPROTO_IP, socket.IP_TTL, ttl)]) == 63
    assert probe._ancillary_ttl([(socket.IPPROTO_IP, 99, ttl)]) is None
    assert probe._ancillary_ttl([]) is None


# --- input validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("cdn-server", "host names are not resolved"),
        ("server.cdn.svc", "host names are not resolved"),
        ("10.0.2.10/24", "not an IPv4 address"),
        (" 10.0.2.10", "not an IPv4 address"),
        ("10.0.2.256", "not an IPv4 address"),
        ("0.0.0.0", "not a usable host address"),
        ("127.0.0.1", "not a usable host address"),
        ("224.0.0.1", "not a usable host address"),
        ("255.255.255.255", "not a usable host address"),
        ("::1", "not an IPv4 address"),
        ("", "not an IPv4 address"),
        (None, "not an IPv4 address"),
        (167772682, "not an IPv4 address"),
    ],
)
def test_bad_targets_are_refused_naming_the_parameter(target, fragment):
    for call in (validate_target, ping, traceroute, check):
        with pytest.raises(ValueError, match=fragment) as info:
            call(target)
        assert str(info.value).startswith("parameter 'target': ")


@pytest.mark.parametrize("count", [0, 101, -1, "3", 2.0, True, None])
def test_bad_counts_are_refused_naming_the_parameter(count):
    with pytest.raises(ValueError, match=r"^parameter 'count': "):
        validate_count(count)
    with pytest.raises(ValueError, match=r"^parameter 'count': "):
        ping(SERVER, count=count)
    with pytest.raises(ValueError, match=r"^parameter 'count': "):
        check(SERVER, count=count)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: ping(SERVER, timeout=0), "timeout"),
        (lambda: ping(SERVER, timeout=float("nan")), "timeout"),
        (lambda: ping(SERVER, timeout=cast(Any, "1")), "timeout"),
        (lambda: ping(SERVER, interval=60), "interval"),
        (lambda: traceroute(SERVER, max_hops=0), "max-hops"),
        (lambda: traceroute(SERVER, probes=6), "probes"),
        (lambda: traceroute(SERVER, timeout=True), "timeout"),
        (lambda: check(SERVER, max_hops=65), "max-hops"),
    ],
)
def test_other_bad_parameters_are_refused_by_name(call, name):
    with pytest.raises(ValueError, match=rf"^parameter '{name}': "):
        call()


@given(st.one_of(tricky_text([SERVER, "10.0.0.1"]), st.ip_addresses(v=4).map(str)))
def test_any_text_is_a_unicast_address_or_refused(text):
    try:
        accepted = validate_target(text)
    except ValueError as exc:
        assert str(exc).startswith("parameter 'target': ")
        return
    address = ipaddress.IPv4Address(accepted)
    assert accepted == text
    assert not (address.is_loopback or address.is_multicast or address.is_link_local)
    assert not (address.is_unspecified or address.is_reserved)


def test_validate_count_accepts_the_range():
    assert [validate_count(n) for n in (1, 3, 100)] == [1, 3, 100]


# --- the topology ---------------------------------------------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def sysctl(ns: str, setting: str) -> None:
    ip("netns", "exec", ns, "sysctl", "-q", "-w", setting)


@contextlib.contextmanager
def built_topology(tag: str) -> Iterator[dict[str, str]]:
    """Namespaces client, router, server; removed even when building them fails halfway."""
    names = {role: f"{tag}-{role[0]}" for role in ("client", "router", "server")}
    made: list[str] = []
    try:
        for ns in names.values():
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        client, router, server = names["client"], names["router"], names["server"]
        # Veths are made inside the namespaces, so their names cannot clash with the host's.
        ip(
            "-n",
            client,
            "link",
            "add",
            f"{tag}c",
            "type",
            "veth",
            "peer",
            "name",
            f"{tag}r1",
            "netns",
            router,
        )
        ip(
            "-n",
            router,
            "link",
            "add",
            f"{tag}r2",
            "type",
            "veth",
            "peer",
            "name",
            f"{tag}s",
            "netns",
            server,
        )
        for ns, dev, address in (
            (client, f"{tag}c", f"{CLIENT}/24"),
            (router, f"{tag}r1", f"{ROUTER}/24"),
            (router, f"{tag}r2", f"{ROUTER2}/24"),
            (server, f"{tag}s", f"{SERVER}/24"),
        ):
            ip("-n", ns, "addr", "add", address, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", client, "route", "add", "default", "via", ROUTER)
        ip("-n", server, "route", "add", "default", "via", ROUTER2)
        sysctl(router, "net.ipv4.ip_forward=1")
        # Let root's group open unprivileged ICMP sockets in the client (the datagram fallback).
        sysctl(client, "net.ipv4.ping_group_range=0 0")
        # ICMP errors are rate limited per peer (a burst of 6, then 1/s): repeated traces in one
        # test run must not see answers dropped.
        for ns in (router, server):
            sysctl(ns, "net.ipv4.icmp_ratelimit=0")
        yield names
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def _skip_unless_root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("the probes need root (network namespaces, raw sockets) and iproute2's `ip`")


@pytest.fixture(scope="module")
def topology():
    _skip_unless_root()
    with built_topology(f"prb-{os.getpid()}") as names:
        yield names


@pytest.fixture
def fresh_topology(request):
    """A topology of the test's own, for the router's no-route errors: the kernel limits those
    per sender to a burst of 5, then 1/s (net.ipv4.route.error_burst, host-wide, not per
    namespace, so not ours to change), but counts them per namespace."""
    _skip_unless_root()
    with built_topology(f"prb-{os.getpid()}{next(_FRESH)}") as names:
        yield names


_FRESH = itertools.count()


CAP_NET_RAW = 13
_LIBC = ctypes.CDLL(None, use_errno=True)


def _drop_net_raw() -> None:
    """Drop CAP_NET_RAW from this thread only: capset(2) acts on the calling thread."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # {effective, permitted, inheritable} x 2
    if _LIBC.capget(header, data) != 0 or not data[0] & (1 << CAP_NET_RAW):
        raise OSError(ctypes.get_errno(), "capget")
    data[0] &= ~(1 << CAP_NET_RAW)
    if _LIBC.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def in_netns(ns: str, call: Callable[[], Any], drop_net_raw: bool = False) -> Any:
    """call() in `ns`, as an unprivileged prober would run when asked (no CAP_NET_RAW)."""
    return netns.in_netns(ns, call, before=_drop_net_raw if drop_net_raw else None)


@needs_netns
def test_ping_through_the_router(topology):
    client = topology["client"]
    result = in_netns(client, lambda: ping(SERVER, count=3, interval=0.05))
    assert (result.sent, result.received, result.loss, result.ttl) == (3, 3, 0.0, 63)
    assert result.method == "raw"
    assert result.rtt_min is not None and result.rtt_max is not None and result.rtt_avg is not None
    assert 0 < result.rtt_min <= result.rtt_avg <= result.rtt_max < 1000
    assert result.errors == []
    # The router is one hop closer: its replies leave with TTL 64 and are not forwarded.
    assert in_netns(client, lambda: ping(ROUTER, count=1)).ttl == 64


@needs_netns
def test_ping_falls_back_to_the_datagram_socket(topology):
    result = in_netns(topology["client"], lambda: ping(SERVER, count=2, interval=0.05), drop_net_raw=True)
    assert result.method == "dgram"
    assert (result.sent, result.received, result.loss, result.ttl) == (2, 2, 0.0, 63)
    assert result.errors == []


@needs_netns
def test_ping_without_any_icmp_socket_says_why(topology, monkeypatch):
    def refused() -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(probe, "_raw_icmp_socket", refused)
    monkeypatch.setattr(probe, "_dgram_icmp_socket", refused)
    result = in_netns(topology["client"], lambda: ping(SERVER, count=1))
    assert (result.sent, result.received, result.loss, result.rtt_avg, result.ttl) == (
        0,
        0,
        100.0,
        None,
        None,
    )
    assert "CAP_NET_RAW" in result.errors[0] and "ping_group_range" in result.errors[0]


@needs_netns
def test_ping_nobody_loses_everything_in_bounded_time(topology):
    started = time.monotonic()
    result = in_netns(topology["client"], lambda: ping(NOBODY, count=2, timeout=0.3, interval=0.1))
    assert time.monotonic() - started < 2
    assert (result.sent, result.received, result.loss) == (2, 0, 100.0)
    assert (result.rtt_min, result.rtt_avg, result.rtt_max, result.ttl) == (None, None, None, None)


@needs_netns
def test_ping_reports_who_said_unreachable(fresh_topology):
    result = in_netns(fresh_topology["client"], lambda: ping(NO_ROUTE, count=1, timeout=0.5))
    assert (result.received, result.loss) == (0, 100.0)
    assert result.errors == [f"{ROUTER}: network unreachable"]


@needs_netns
def test_ping_without_a_route_reports_the_send_error(topology):
    # The router has no default route: the kernel refuses the send itself.
    result = in_netns(topology["router"], lambda: ping(NO_ROUTE, count=2, interval=0.01, timeout=0.1))
    assert (result.sent, result.received, result.loss) == (0, 0, 100.0)
    assert result.errors == ["send: Network is unreachable"]


@needs_netns
@pytest.mark.parametrize("drop_net_raw", [False, True], ids=["raw", "recverr"])
def test_traceroute_through_the_router(topology, drop_net_raw):
    result = in_netns(topology["client"], lambda: traceroute(SERVER, max_hops=8), drop_net_raw=drop_net_raw)
    assert result.method == ("recverr" if drop_net_raw else "raw")
    assert [hop.address for hop in result.hops] == [ROUTER, SERVER]
    assert [hop.ttl for hop in result.hops] == [1, 2]
    assert [hop.answered for hop in result.hops] == [3, 3]
    assert all(hop.rtt is not None and 0 < hop.rtt < 1000 for hop in result.hops)
    assert [hop.note for hop in result.hops] == ["", ""]
    assert result.reached
    assert result.errors == []


@needs_netns
@pytest.mark.parametrize("drop_net_raw", [False, True], ids=["raw", "recverr"])
def test_traceroute_to_nobody_is_not_reached_in_bounded_time(topology, drop_net_raw):
    started = time.monotonic()
    result = in_netns(
        topology["client"],
        lambda: traceroute(NOBODY, max_hops=4, probes=1, timeout=0.3),
        drop_net_raw=drop_net_raw,
    )
    assert time.monotonic() - started < 2
    assert [hop.address for hop in result.hops] == [ROUTER, None, None, None]
    assert not result.reached


@needs_netns
def test_traceroute_stops_where_the_network_is_unreachable(fresh_topology):
    result = in_netns(fresh_topology["client"], lambda: traceroute(NO_ROUTE, max_hops=10, probes=2))
    assert not result.reached
    assert [(hop.address, hop.note) for hop in result.hops] == [(ROUTER, "!N")]
    assert result.errors == [f"hop 1 ({ROUTER}): network unreachable"]


@needs_netns
def test_traceroute_many_hops_go_in_waves(topology, monkeypatch):
    # Small waves: the second wave must still find the target and stop the trace there.
    monkeypatch.setattr(probe, "TRACE_WAVE", 2)
    result = in_netns(topology["client"], lambda: traceroute(SERVER, max_hops=6, probes=1, timeout=0.5))
    assert [hop.address for hop in result.hops] == [ROUTER, SERVER]
    assert result.reached


@needs_netns
def test_traceroute_without_a_route_reports_the_send_error(topology):
    result = in_netns(topology["router"], lambda: traceroute(NO_ROUTE, max_hops=3, timeout=0.1))
    assert not result.reached
    assert result.hops == []
    assert result.errors == ["send: Network is unreachable"]


@needs_netns
def test_check_is_the_pocs_validation(topology):
    results = in_netns(topology["client"], lambda: check(SERVER, count=2))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in results.items())
    assert results["ttl"] == "63"
    assert results["hops"] == f"{ROUTER} {SERVER}"
    assert (results["hop-count"], results["reached"]) == ("2", "true")
    assert (results["sent"], results["received"], results["loss-percent"]) == ("2", "2", "0")
    assert float(results["rtt-min-ms"]) <= float(results["rtt-avg-ms"]) <= float(results["rtt-max-ms"])
    assert len(results["hop-rtts-ms"].split()) == 2
    assert "errors" not in results
    json.dumps(results)


@needs_netns
def test_check_of_nobody(topology):
    results = in_netns(topology["client"], lambda: check(NOBODY, count=1, max_hops=3, timeout=0.3))
    assert (results["loss-percent"], results["reached"]) == ("100", "false")
    assert results["hops"] == f"{ROUTER} * *"
    assert results["hop-rtts-ms"].endswith("* *")
    assert not {"ttl", "rtt-min-ms", "rtt-avg-ms", "rtt-max-ms", "errors"} & set(results)


@needs_netns
def test_check_reports_errors_in_one_string(fresh_topology):
    results = in_netns(fresh_topology["client"], lambda: check(NO_ROUTE, count=1, max_hops=3, timeout=0.3))
    assert results["errors"] == (
        f"ping: {ROUTER}: network unreachable; traceroute: hop 1 ({ROUTER}): network unreachable"
    )


@needs_netns
def test_main_prints_the_result_and_exits_by_it(topology, capsys):
    assert in_netns(topology["client"], lambda: probe.main([SERVER, "--count", "1"])) == 0
    assert json.loads(capsys.readouterr().out)["hops"] == f"{ROUTER} {SERVER}"
    argv = [NOBODY, "--count", "1", "--max-hops", "2", "--timeout", "0.2"]
    assert in_netns(topology["client"], lambda: probe.main(argv)) == 1
    assert probe.main(["cdn-server"]) == 2
    assert "parameter 'target'" in capsys.readouterr().err


@needs_netns
def test_the_module_runs_as_a_program_in_the_namespace(topology):
    # The lab's way: the same code run by `ip netns exec`, as a separate process.
    command = [sys.executable, "-m", "l2sm_core.probe", SERVER, "--count", "1"]
    done = subprocess.run(
        ["ip", "netns", "exec", topology["client"], *command], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ttl"] == "63"


def test_as_dict_is_json():
    result = probe.TraceResult(SERVER, hops=[probe.Hop(1, ROUTER, 0.5, 1)], reached=False)
    assert json.loads(json.dumps(probe.as_dict(result)))["hops"][0]["address"] == ROUTER


# --- reply matching, against a socket that answers with crafted packets -------------------------


class FakeSocket:
    """Answers each echo request or probe with what `respond` makes of it: packets, delays
    (a float, slept before the next packet) or exceptions (raised by recvmsg)."""

    def __init__(self, respond: Callable[[bytes, tuple[str, int]], list[Any]]):
        self.respond = respond
        self.queue: list[Any] = []

    def setsockopt(self, *args: Any) -> None:
        pass

    def sendto(self, data: bytes, address: tuple[str, int]) -> int:
        self.queue.extend(self.respond(data, address))
        return len(data)

    def recvmsg(self, *args: Any) -> tuple[bytes, list[Any], int, tuple[str, int]]:
        item = self.queue.pop(0)
        while isinstance(item, float):
            time.sleep(item)
            item = self.queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        data, ancillary, address = item
        return data, ancillary, 0, address

    def recv(self, size: int, flags: int = 0) -> bytes:
        if not self.queue and flags & socket.MSG_DONTWAIT:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return self.recvmsg(size)[0]


@pytest.fixture
def fake_wait(monkeypatch):
    def wait(sock: FakeSocket, until: float) -> bool:
        if sock.queue:
            return True
        time.sleep(max(0.0, until - time.monotonic()))
        return False

    monkeypatch.setattr(probe, "_wait_readable", wait)


def echo_parts(request: bytes) -> tuple[int, int, bytes]:
    message = parse_icmp(request)
    return message.identifier, message.sequence, message.payload


def reply(identifier: int, sequence: int, payload: bytes) -> bytes:
    return icmp(0, 0, struct.pack("!HH", identifier, sequence), payload)


def test_raw_ping_ignores_everything_but_its_own_intact_replies(fake_wait):
    def respond(request: bytes, address: tuple[str, int]) -> list[Any]:
        identifier, sequence, payload = echo_parts(request)
        good = reply(identifier, sequence, payload)
        corrupt = bytearray(good)
        corrupt[-1] ^= 0xFF
        quoted_other = ip_packet(echo_request(identifier + 1, sequence, b""), CLIENT, SERVER)
        return [
            (ip_packet(b"\0" * 8, SERVER, CLIENT, proto=17), [], (SERVER, 0)),  # not ICMP
            (ip_packet(bytes(corrupt), SERVER, CLIENT), [], (SERVER, 0)),  # bad checksum
            (ip_packet(reply(identifier ^ 1, sequence, payload), SERVER, CLIENT), [], (SERVER, 0)),
            (ip_packet(reply(identifier, sequence, payload[::-1]), SERVER, CLIENT), [], (SERVER, 0)),
            (ip_packet(good, "10.9.9.9", CLIENT), [], ("10.9.9.9", 0)),  # someone else
            (ip_packet(icmp(11, 0, bytes(4), b"\x45"), ROUTER, CLIENT), [], (ROUTER, 0)),  # bad quote
            (ip_packet(icmp(3, 1, bytes(4), quoted_other), ROUTER, CLIENT), [], (ROUTER, 0)),  # not ours
            (ip_packet(icmp(5, 0, bytes(4), b""), ROUTER, CLIENT), [], (ROUTER, 0)),  # a redirect
            OSError(113, "No route to host"),
            (ip_packet(good, SERVER, CLIENT, ttl=60), [], (SERVER, 0)),
            (ip_packet(good, SERVER, CLIENT, ttl=61), [], (SERVER, 0)),  # a duplicate
        ]

    result = probe.PingResult(SERVER, method="raw")
    probe._ping(FakeSocket(respond), result, count=2, timeout=0.2, interval=0.0)  # type: ignore[arg-type]
    assert (result.sent, result.received, result.loss, result.ttl) == (2, 2, 0.0, 60)
    assert result.errors == ["receive: No route to host"]


def test_dgram_ping_matches_by_sequence_and_reads_the_ttl_from_ancillary_data(fake_wait):
    def respond(request: bytes, address: tuple[str, int]) -> list[Any]:
        identifier, sequence, payload = echo_parts(request)
        # The kernel gave the socket its own identifier: replies carry that one, not ours.
        data = reply(identifier ^ 0x5555, sequence, payload)
        ttl = [(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("i", 63 if sequence % 2 else 62))]
        return [(data, ttl, (SERVER, identifier ^ 0x5555))]

    result = probe.PingResult(SERVER, method="dgram")
    probe._ping(FakeSocket(respond), result, count=3, timeout=0.2, interval=0.0)  # type: ignore[arg-type]
    assert (result.sent, result.received, result.loss) == (3, 3, 0.0)
    assert result.ttl in (62, 63)  # the most common of the three


def test_late_replies_count_as_lost(fake_wait):
    def respond(request: bytes, address: tuple[str, int]) -> list[Any]:
        return [0.15, (ip_packet(reply(*echo_parts(request)), SERVER, CLIENT), [], (SERVER, 0))]

    result = probe.PingResult(SERVER, method="raw")
    probe._ping(FakeSocket(respond), result, count=1, timeout=0.05, interval=0.0)  # type: ignore[arg-type]
    assert (result.sent, result.received, result.loss, result.rtt_avg) == (1, 0, 100.0, None)


def test_raw_trace_matches_answers_by_the_quoted_ports():
    plan = [probe._Probe(1, 33434, sent=True, sent_at=time.perf_counter())]
    by_port = {p.port: p for p in plan}

    def read(packet: bytes) -> None:
        sock = FakeSocket(lambda *_: [])
        sock.queue.append((packet, [], (ROUTER, 0)))
        probe._read_raw(sock, SERVER, 40000, by_port)  # type: ignore[arg-type]

    def exceeded(sport: int, dport: int, dst: str = SERVER) -> bytes:
        udp = struct.pack("!HHHH", sport, dport, 40, 0)
        return ip_packet(icmp(11, 0, bytes(4), ip_packet(udp, CLIENT, dst, ttl=1, proto=17)), ROUTER, CLIENT)

    read(b"garbage")
    read(exceeded(40001, 33434))  # another traceroute's probe
    read(exceeded(40000, 33434, dst="10.9.9.9"))  # ours to elsewhere
    read(exceeded(40000, 33500))  # no such probe
    assert plan[0].source is None
    read(exceeded(40000, 33434))
    assert (plan[0].source, plan[0].icmp_type) == (ROUTER, 11)
    first = plan[0].rtt
    read(exceeded(40000, 33434))  # a duplicate changes nothing
    assert plan[0].rtt == first


def test_errqueue_trace_reads_the_offender():
    plan = [probe._Probe(2, 33435, sent=True, sent_at=time.perf_counter())]
    by_port = {p.port: p for p in plan}

    def extended(origin: int, kind: int, code: int, offender: str) -> bytes:
        err = struct.pack("=IBBBBII", 111, origin, kind, code, 0, 0, 0)
        return err + struct.pack("=H", socket.AF_INET) + b"\0\0" + socket.inet_aton(offender) + bytes(8)

    def read(ancillary: list[Any], address: tuple[str, int] = (SERVER, 33435)) -> None:
        sock = FakeSocket(lambda *_: [])
        sock.queue.append((bytes(32), ancillary, address))
        probe._read_errqueue(sock, SERVER, by_port)  # type: ignore[arg-type]

    level, kind = socket.IPPROTO_IP, probe.IP_RECVERR
    read([(level, 99, extended(2, 3, 3, SERVER))])  # another control message
    read([(level, kind, b"short")])
    read([(level, kind, extended(1, 0, 0, "0.0.0.0"))])  # local origin
    read([(level, kind, extended(2, 3, 3, SERVER))], address=("10.9.9.9", 33435))
    # Readable, but a stray datagram rather than an error: it is read away.
    sock = FakeSocket(lambda *_: [])
    sock.queue.extend([BlockingIOError(11, "Resource temporarily unavailable"), (b"stray", [], (SERVER, 9))])
    probe._read_errqueue(sock, SERVER, by_port)  # type: ignore[arg-type]
    assert sock.queue == []
    sock.queue.append(BlockingIOError(11, "Resource temporarily unavailable"))
    probe._read_errqueue(sock, SERVER, by_port)  # type: ignore[arg-type]
    assert plan[0].source is None
    read([(level, kind, extended(2, 3, 3, SERVER))])
    assert (plan[0].source, plan[0].icmp_type, plan[0].code) == (SERVER, 3, 3)


def test_wait_readable_gives_up_at_the_deadline():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert probe._wait_readable(sock, time.monotonic() - 1) is False
        assert probe._wait_readable(sock, time.monotonic() + 0.01) is False
