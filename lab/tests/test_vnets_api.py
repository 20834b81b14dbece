"""The vnets REST front: what it tells the forwarding side (on_change, learned_ports), where
it serves (its own socket, an inherited one), and the devices it lists. Driven through the
client the charm uses."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time

import pytest

from l2sm_controlplane.vnets import (
    ControllerConflict,
    ControllerResponseError,
    ControllerUnauthorized,
    Device,
    VnetsClient,
)
from l2sm_lab.vnets_api import VnetsFront

A1, A2, A3 = (f"of:{'a' * 16}/{n}" for n in (1, 2, 3))
B1 = f"of:{'b' * 16}/1"


@pytest.fixture
def front():
    served = VnetsFront().start()
    yield served
    served.stop()


@pytest.fixture
def calls(front):
    """Every on_change call, in order."""
    seen: list[set[str]] = []
    front.on_change = seen.append
    return seen


def client(front: VnetsFront, password: str = "karaf") -> VnetsClient:
    # A short timeout: a deadlock shows as ControllerUnreachable, not a hung suite.
    return VnetsClient(front.url, "karaf", password, timeout=2)


def test_each_write_names_the_networks_it_changed(front, calls):
    c = client(front)
    c.create_network("net-a")
    c.create_network("net-b")
    assert calls == [{"net-a"}, {"net-b"}]
    c.create_network("net-a")  # putIfAbsent: nothing changed, nothing to tell
    assert len(calls) == 2
    c.add_ports("net-a", [A1, A2])
    assert calls[-1] == {"net-a"}
    # The record moves to net-b: net-a stops learning on A1 as well.
    c.add_ports("net-b", [A1])
    assert calls[-1] == {"net-a", "net-b"}
    # The record (net-b) goes, whichever network the call names.
    c.remove_ports("net-a", [A1])
    assert calls[-1] == {"net-a", "net-b"}
    c.remove_ports("net-a", [A2])
    assert calls[-1] == {"net-a"}
    c.add_ports("net-b", [B1])
    front.hold("net-a", B1)  # net-a now holds the record of B1, net-b the copy only
    assert calls[-1] == {"net-a", "net-b"}
    calls.clear()
    # Deleting net-b takes the record of every port it lists, here net-a's one of B1.
    c.delete_network("net-b")
    assert calls == [{"net-a", "net-b"}]
    assert front.learned_ports() == {"net-a": []}
    c.delete_network("net-gone")  # 204 upstream, but nothing changed
    assert len(calls) == 1


def test_restart_names_every_network_and_hold_its_own(front, calls):
    front.hold("net-a", A1)
    front.hold("net-b")
    front.hold("net-c", A2)
    assert calls == [{"net-a"}, {"net-b"}, {"net-c"}]
    front.restart()
    assert calls[-1] == {"net-a", "net-b", "net-c"}
    assert front.learned_ports() == {}


def test_no_call_on_reads_or_refused_writes(front, calls):
    front.hold("net-a", A1)
    calls.clear()
    front.refuse_create.add("net-x")
    c = client(front)
    c.status()
    assert c.network_ports("net-a") == [A1]
    c.devices()
    assert c.app_state() == "ACTIVE"
    with pytest.raises(ControllerConflict):
        c.create_network("net-x")
    with pytest.raises(ControllerConflict):
        c.add_ports("net-missing", [A1])
    with pytest.raises(ControllerConflict):
        c.remove_ports("net-missing", [A1])
    with pytest.raises(ControllerResponseError):  # no record of A2: a 500
        c.remove_ports("net-a", [A2])
    with pytest.raises(ControllerResponseError):  # no name: a 500
        c._request("POST", "/onos/vnets/api", {"networkId": ""})
    with pytest.raises(ControllerUnauthorized):
        client(front, password="wrong").add_ports("net-a", [A2])
    with pytest.raises(ControllerUnauthorized):
        client(front, password="wrong").delete_network("net-a")
    assert calls == []
    assert front.learned_ports() == {"net-a": [A1]}


def test_a_refusal_after_a_removal_still_tells(front, calls):
    """DELETE /port stops at the first port without a record, with those before it gone."""
    front.hold("net-a", A1, A2)
    calls.clear()
    with pytest.raises(ControllerResponseError):
        client(front)._request(
            "DELETE", "/onos/vnets/api/port", {"networkId": "net-a", "networkEndpoints": [A1, A3, A2]}
        )
    assert calls == [{"net-a"}]
    assert front.learned_ports() == {"net-a": [A2]}


def test_the_callback_runs_outside_the_lock_and_before_the_answer(front):
    """It reads the state it is told about (a deadlock with the lock held), and the client is
    back from its write only once the callback has run."""
    seen: list[dict[str, list[str]]] = []

    def read_back(names: set[str]) -> None:
        seen.append({n: front.learned(n) for n in sorted(names)} | {"*": list(front.learned_ports())})

    front.on_change = read_back
    c = client(front)
    c.create_network("net-a")
    c.add_ports("net-a", [A1])
    assert seen == [{"net-a": [], "*": ["net-a"]}, {"net-a": [A1], "*": ["net-a"]}]
    # Direct calls too, from a thread: a deadlock fails the test instead of hanging it.
    for call in (lambda: front.hold("net-b", B1), front.restart):
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(timeout=2)
        assert not worker.is_alive(), "deadlocked: on_change called with the lock held"
    assert seen[-2:] == [
        {"net-b": [B1], "*": ["net-a", "net-b"]},
        {"net-a": [], "net-b": [], "*": []},
    ]
    # The server took more requests meanwhile: the lock is free.
    c.create_network("net-c")
    assert seen[-1] == {"net-c": [], "*": ["net-c"]}


def test_a_failing_callback_is_logged_and_the_write_answered(front, caplog):
    def broken(names: set[str]) -> None:
        raise RuntimeError("flow table full")

    front.on_change = broken
    c = client(front)
    with caplog.at_level(logging.ERROR, logger="l2sm_lab.vnets_api"):
        c.create_network("net-a")
        c.add_ports("net-a", [A1])
        front.restart()
    assert [r.exc_info[1].args for r in caplog.records if r.exc_info and r.exc_info[1]] == [
        ("flow table full",)
    ] * 3
    assert "net-a" in caplog.records[0].getMessage()
    c.create_network("net-b")  # still serving
    assert c.network_exists("net-b")


def test_learned_ports_dedups_keeps_order_and_leaves_out_ports_without_their_record(front):
    front.hold("net-a", A2, A1, A2, A3)
    front.hold("net-b", A3)  # the record of A3 moves to net-b: net-a holds a copy only
    front.hold("net-c")
    del front.port_network[A1]  # held, its record gone (as after another network's delete)
    assert front.learned_ports() == {"net-a": [A2], "net-b": [A3], "net-c": []}
    assert front.networks["net-a"] == [A2, A1, A2, A3]  # what the controller holds is untouched
    snapshot = front.learned_ports()
    snapshot["net-a"].append(B1)
    assert front.learned_ports()["net-a"] == [A2]  # a copy, not the state


def test_a_port_posted_twice_forwards_once_until_both_copies_go(front):
    c = client(front)
    c.create_network("net-a")
    c.add_ports("net-a", [A1, A2])
    c.add_ports("net-a", [A1])
    assert front.learned_ports() == {"net-a": [A1, A2]}
    c.remove_ports("net-a", [A1])  # one copy left, but upstream drops the record
    assert front.learned_ports() == {"net-a": [A2]}
    assert c.network_ports("net-a") == [A2, A1]


def test_devices_set_and_dropped(front):
    c = client(front)
    assert c.devices() == []
    front.set_device("of:" + "a" * 16, True)
    front.set_device("of:" + "b" * 16, True)
    front.set_device("of:" + "a" * 16, False)  # disconnected: ONOS keeps it, unavailable
    assert c.devices() == [Device("of:" + "a" * 16, False), Device("of:" + "b" * 16, True)]
    front.drop_device("of:" + "a" * 16)
    front.drop_device("of:" + "c" * 16)  # unknown: nothing to do
    assert c.devices() == [Device("of:" + "b" * 16, True)]


def test_serves_a_prebound_socket_from_the_callers_thread():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    served = VnetsFront("admin", "secret", sock=sock)
    assert served.url == f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    try:
        c = VnetsClient(f"http://127.0.0.1:{port}", "admin", "secret", timeout=2)
        c.create_network("net-a")
        assert served.learned_ports() == {"net-a": []}
        with pytest.raises(ControllerUnauthorized):
            VnetsClient(served.url, "karaf", "karaf", timeout=2).status()
    finally:
        served.stop()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert sock.fileno() == -1  # stop() closed it: the port is free again


CHILD = """
import socket, sys
from l2sm_lab.vnets_api import VnetsFront
served = VnetsFront(sock=socket.socket(fileno=int(sys.argv[1])))
served.hold("net-child")
print("serving", flush=True)
served.serve_forever()
"""


def test_serves_a_socket_inherited_by_another_process():
    """The lab binds in one namespace and serves from a process in another: the child gets
    the listening socket as a file descriptor and nothing else."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(sock.fileno())],
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        text=True,
    )
    sock.close()  # the child's copy is the only one left
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "serving\n"
        c = VnetsClient(f"http://127.0.0.1:{port}", "karaf", "karaf", timeout=5)
        assert c.network_exists("net-child")
        c.add_ports("net-child", [A1])
        assert c.network_ports("net-child") == [A1]
    finally:
        child.kill()
        child.wait(timeout=5)


def test_binds_the_port_it_is_given_and_stops_without_having_served():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    served = VnetsFront(host="127.0.0.1", port=port)
    assert served.url == f"http://127.0.0.1:{port}"
    started = time.monotonic()
    served.stop()  # never served: must not wait for a loop that never ran
    assert time.monotonic() - started < 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
