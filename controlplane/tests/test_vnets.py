"""The client against a real HTTP server (the test double speaks HTTP; the client is not mocked)."""

import http.client
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from l2sm_controlplane import vnets
from l2sm_controlplane.vnets import VnetsClient

EP1 = "of:e5e40be8c6b4bf54/1"
EP2 = "of:cc4d87e0ca1f6b49/2"


def client_for(controller, password="karaf", timeout=2.0):
    return VnetsClient(controller.url, "karaf", password, timeout=timeout)


def test_network_lifecycle(controller):
    client = client_for(controller)
    client.status()
    assert client.is_ready()
    assert not client.network_exists("net-a")
    client.create_network("net-a")
    assert client.network_exists("net-a")
    assert "net-a" in client.describe_network("net-a")
    assert client.network_ports("net-a") == []
    client.add_ports("net-a", [EP1, EP2])
    assert controller.networks["net-a"] == [EP1, EP2]
    # Upstream appends: a port posted again is held twice.
    client.add_ports("net-a", [EP1])
    assert client.network_ports("net-a") == [EP1, EP2, EP1]
    client.remove_ports("net-a", [EP1])
    assert controller.networks["net-a"] == [EP2, EP1]
    client.delete_network("net-a")
    assert "net-a" not in controller.networks
    method, path, _ = controller.requests[2]
    assert (method, path) == ("GET", "/onos/vnets/api/net-a")
    assert ("POST", "/onos/vnets/api/port", {"networkId": "net-a", "networkEndpoints": [EP1, EP2]}) in (
        controller.requests
    )


def test_typed_errors(controller):
    client = client_for(controller)
    client.create_network("net-a")
    client.add_ports("net-a", [EP1])
    # Upstream semantics: creating twice and deleting an unknown network both succeed.
    client.create_network("net-a")
    assert controller.networks["net-a"] == [EP1]
    client.delete_network("missing")
    with pytest.raises(vnets.ControllerConflict):
        client.add_ports("missing", [EP1])
    with pytest.raises(vnets.NetworkMissing):
        client.describe_network("missing")
    with pytest.raises(vnets.NetworkMissing):
        client.network_ports("missing")
    with pytest.raises(vnets.ControllerConflict):
        client.remove_ports("missing", [EP1])
    with pytest.raises(vnets.ControllerResponseError, match="500"):
        client.remove_ports("net-a", [EP2])  # no record of the port: upstream's NullPointerException
    controller.refuse_create.add("net-b")
    with pytest.raises(vnets.ControllerConflict):
        client.create_network("net-b")
    with pytest.raises(vnets.ControllerUnauthorized):
        client_for(controller, password="wrong").status()
    assert not client_for(controller, password="wrong").is_ready()
    controller.ready = False
    with pytest.raises(vnets.ControllerResponseError, match="503"):
        client.status()


def test_endpoints_checked_before_sending(controller):
    client = client_for(controller)
    client.create_network("net-a")
    before = len(controller.requests)
    for bad in ("of:E5E40BE8C6B4BF54/1", "of:e5e40be8/1", "of:e5e40be8c6b4bf54/0", "eth0", f"{EP1}\n", 7):
        with pytest.raises(ValueError, match="not a switch port"):
            client.add_ports("net-a", [bad])  # pyright: ignore[reportArgumentType]
    assert len(controller.requests) == before


def test_devices(controller):
    controller.devices = {"of:e5e40be8c6b4bf54": True, "of:cc4d87e0ca1f6b49": False}
    devices = client_for(controller).devices()
    assert {(d.id, d.available) for d in devices} == {
        ("of:e5e40be8c6b4bf54", True),
        ("of:cc4d87e0ca1f6b49", False),
    }


def test_onos_application(controller):
    client = client_for(controller)
    controller.vnets_installed = False
    assert client.onos_ready()
    assert client.app_state() is None
    with pytest.raises(vnets.NetworkMissing):
        client.status()  # the vnets API is not there before the app
    client.install_app(b"PK-oar-bytes")
    assert controller.installed_archives == [b"PK-oar-bytes"]
    assert client.app_state() == "ACTIVE"
    client.status()
    controller.vnets_active = False
    assert client.app_state() == "INSTALLED"
    with pytest.raises(vnets.NetworkMissing):
        client.status()
    client.activate_app()
    assert client.app_state() == "ACTIVE"
    controller.onos_up = False
    assert not client.onos_ready()


def test_openflow_application(controller):
    client = client_for(controller)
    assert client.app_state(vnets.OPENFLOW_APP) == "ACTIVE"
    controller.openflow_state = "INSTALLED"
    assert client.app_state(vnets.OPENFLOW_APP) == "INSTALLED"
    client.activate_app(vnets.OPENFLOW_APP)
    assert controller.openflow_state == "ACTIVE"
    controller.openflow_state = None
    assert client.app_state(vnets.OPENFLOW_APP) is None


def test_network_text_as_upstream_writes_it():
    text = (
        "Id: net-a\nEndpoints: \n -of:e5e40be8c6b4bf54/1\n -of:cc4d87e0ca1f6b49/12\n -of:e5e40be8c6b4bf54/1\n"
        "Tunnel Ids: \n -1203\n -77\n -9\nMirror Port: null\n"
    )
    assert vnets.parse_network_text("net-a", text) == [EP1, "of:cc4d87e0ca1f6b49/12", EP1]
    mirrored = "Id: n\nEndpoints: \nTunnel Ids: \nMirror Port: of:cc4d87e0ca1f6b49/2\n"
    assert vnets.parse_network_text("n", mirrored) == []
    # Releases before port mirroring end after the tunnel ids.
    older = "Id: n\nEndpoints: \n -of:cc4d87e0ca1f6b49/2\nTunnel Ids: \n -1001\n"
    assert vnets.parse_network_text("n", older) == ["of:cc4d87e0ca1f6b49/2"]


@pytest.mark.parametrize(
    "text",
    [
        "Id: net-a\nEndpoints: \nTunnel Ids: \nMirror Port: null",  # no final newline
        "Id: net-a \nEndpoints: \nTunnel Ids: \nMirror Port: null\n",
        "Id: net-a\nTunnel Ids: \nMirror Port: null\n",
        "Id: net-a\nEndpoints: \n -of:e5e40be8c6b4bf54/1\nMirror Port: null\n",
        "Id: net-a\nEndpoints: \n -of:e5e40be8c6b4bf54/1 \nTunnel Ids: \nMirror Port: null\n",
        "Id: net-a\nEndpoints: \nTunnel Ids: \nMirror Port: null\nMirror Port: null\n",
        "Id: net-a\nEndpoints: \nTunnel Ids: \n -1001\nSomething: else\n",
        "Id: net-a\nEndpoints: \nTunnel Ids: \n -1001",
        "Id: net-a\r\nEndpoints: \r\nTunnel Ids: \r\nMirror Port: null\r\n",
        '{"networkId": "net-a", "networkEndpoints": []}',
    ],
)
def test_network_text_we_cannot_read_is_refused(text):
    with pytest.raises(vnets.UnreadableNetwork, match="network net-a: cannot read"):
        vnets.parse_network_text("net-a", text)


def test_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = VnetsClient(f"http://127.0.0.1:{port}", "karaf", "karaf", timeout=1)
    with pytest.raises(vnets.ControllerUnreachable):
        client.status()
    assert not client.is_ready()


def test_timeout_is_unreachable():
    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(5)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = VnetsClient(f"http://127.0.0.1:{server.server_address[1]}", "u", "p", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(vnets.ControllerUnreachable):
            client.status()
        assert time.monotonic() - started < 3
    finally:
        release.set()
        server.shutdown()
        server.server_close()


class _CutOff:
    """A real socket server that reads each request's head, writes `reply` and closes (or
    resets, with `reset`), as a controller SIGKILLed half-way through its answer does."""

    def __init__(self, reply: bytes, reset: bool = False):
        self.reply, self.reset, self.served = reply, reset, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                conn.sendall(self.reply)
                if self.reset:  # linger 0: the close sends RST, not FIN
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.served += 1

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.sock.close()


_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n"


@pytest.mark.parametrize(
    ("reply", "reset", "why"),
    [
        (_HEAD + b"Id: net-a\nEndpoints: \n", False, "IncompleteRead"),  # body cut off
        (b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n", False, "IncompleteRead"),  # head cut off
        (b"", False, "closed connection without response"),  # RemoteDisconnected
        (b"\x00\x17garbage\r\n\r\n", False, "BadStatusLine"),
        (_HEAD + b"Id: net-a\n", True, None),  # reset: ConnectionResetError or IncompleteRead
    ],
    ids=["body", "head", "nothing", "not-http", "reset"],
)
def test_an_answer_cut_off_is_unreachable_not_an_escape(reply, reset, why):
    """Every read and check call surfaces a cut-off answer as ControllerUnreachable, so a
    caller catching ControllerError (is_ready, the resync) never meets http.client's errors."""
    server = _CutOff(reply, reset)
    try:
        client = VnetsClient(server.url, "u", "p", timeout=2)
        with pytest.raises(vnets.ControllerUnreachable, match=why) as caught:
            client.network_ports("net-a")
        assert isinstance(caught.value.__cause__, (http.client.HTTPException, OSError))
        assert not client.is_ready() and not client.onos_ready()
        with pytest.raises(vnets.ControllerUnreachable):
            client.add_ports("net-a", ["of:00000000000000a1/1"])
        assert server.served == 4
    finally:
        server.close()


def test_an_error_answer_cut_off_keeps_its_status():
    """The code was read before the body broke off: a 404 is still NetworkMissing."""
    server = _CutOff(b"HTTP/1.1 404 Not Found\r\nContent-Length: 40\r\n\r\nno such")
    try:
        client = VnetsClient(server.url, "u", "p", timeout=2)
        assert not client.network_exists("net-a")
    finally:
        server.close()


@pytest.mark.parametrize("path", ["/devices-bad-json", "/devices-no-list"])
def test_devices_bad_body(path):
    class Odd(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"{not json" if path == "/devices-bad-json" else b'{"nodes": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = VnetsClient(f"http://127.0.0.1:{server.server_address[1]}", "u", "p")
        with pytest.raises(vnets.ControllerResponseError, match="unexpected body"):
            client.devices()
    finally:
        server.shutdown()
        server.server_close()


def test_bad_base_url():
    with pytest.raises(ValueError, match="not an http"):
        VnetsClient("ftp://x", "u", "p")
