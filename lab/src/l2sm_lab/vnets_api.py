"""The L2S-M controller's REST API (the vnets app and the bits of ONOS's own the charm uses), served
by a real HTTP server: the lab's OpenFlow controller serves it, and the unit tests' double
(`l2sm_testing.controller_server.FakeController`) is this same class.

It keeps networks and ports in memory, like the vnets app, answers with the vnets app's
status codes, checks HTTP Basic credentials, and can be "restarted" (state lost) or taken
down, which is what the charm's resync must cope with. Standard library only: the tests'
double must not pull in the OpenFlow stack.

As upstream (the vnets app's IDCOManager and NetworkManagement, read for this):
- a network's endpoints are a LIST: every POST /port appends (a port posted twice is held
  twice, with a second tunnel id), DELETE /port removes one copy;
- beside the lists the app keeps ONE record per port, cluster-wide, of the network the port
  is in (`port_network`): POST /port overwrites it, DELETE /port and DELETE /{id} drop it.
  A port held without its record is not learned on (no ARP proxying, no host flows): a pod
  there has no connectivity (`learned`). DELETE /port of a port without a record fails
  with 500 (a NullPointerException upstream) and stops there; of a port with a record it
  answers 200 whether or not this network holds it;
- GET /{id} answers the network's toString() text, 404 when unknown; POST root is
  putIfAbsent (204), 409 on a refusal (`refuse_create`), 500 without a name; POST and
  DELETE /port answer 409 when the network is missing; DELETE /{id} 204, known or not.

Whoever forwards for the networks sets `on_change`: it is told which networks' learned
ports (`learned_ports`) may have changed after every write, outside the lock.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, TypeVar
from urllib.parse import unquote

VNETS = "/onos/vnets/api"
APPS = "/onos/v1/applications"
DEVICES = "/onos/v1/devices"
VNETS_APP = "org.l2sm.vnets"
OPENFLOW_APP = "org.onosproject.openflow"

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound="VnetsFront")


class _Reply(NamedTuple):
    status: int
    body: Any = None
    text: str | None = None


class VnetsFront:
    def __init__(
        self,
        username: str = "karaf",
        password: str = "karaf",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
    ):
        # Network name -> its endpoints, in order, with repeats (upstream's list).
        self.networks: dict[str, list[str]] = {}
        self.tunnel_ids: dict[str, list[int]] = {}
        # Port -> (network, tunnel id): the one record per port upstream keeps.
        self.port_network: dict[str, tuple[str, int]] = {}
        self._next_tunnel = 1000
        self.devices: dict[str, bool] = {}
        self.requests: list[tuple[str, str, object]] = []
        self.ready = True  # the vnets status answer once the app runs
        self.onos_up = True  # ONOS core (web UI and /onos/v1) answering
        self.vnets_installed = True
        self.vnets_active = True  # installed apps may sit INSTALLED until activated
        # ONOS's OpenFlow app: ACTIVE, INSTALLED (not started) or None (not in this ONOS).
        self.openflow_state: str | None = "ACTIVE"
        self.installed_archives: list[bytes] = []
        self.install_fails = False  # ONOS refusing the archive (500)
        self.manager_ready = True  # the manager's /readyz, served here for convenience
        # Names whose creation the controller refuses (409), as on its service errors.
        self.refuse_create: set[str] = set()
        # Networks whose GET /{id} answers this text instead of the real description.
        self.garbled: dict[str, str] = {}
        # Told which networks' learned ports may have changed; called without the lock held.
        self.on_change: Callable[[set[str]], None] | None = None
        # After this many more writes the controller stops answering (a timeout mid-resync).
        self._writes_left: int | None = None
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._lock = threading.Lock()
        if sock is None:
            self._server = ThreadingHTTPServer((host, port), self._handler())
        else:
            # A socket bound elsewhere (another namespace, a parent process): serve on it as is.
            self._server = ThreadingHTTPServer(
                sock.getsockname()[:2], self._handler(), bind_and_activate=False
            )
            self._server.socket.close()
            self._server.socket = sock
            self._server.server_address = sock.getsockname()
        self._serving = False
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self: _F) -> _F:
        """Serve from a daemon thread of its own."""
        self._thread.start()
        return self

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        """Serve until stop(), from the caller's thread (or greenlet)."""
        self._serving = True
        self._server.serve_forever(poll_interval=poll_interval)

    def stop(self) -> None:
        # shutdown() waits for serve_forever to end: it would wait forever if it never began.
        if self._serving:
            self._server.shutdown()
        self._server.server_close()

    def restart(self, lose_apps: bool = False) -> None:
        """What an ONOS restart does to the vnets app: every network and port is gone.

        A new container (pod recreated) also loses the installed app: lose_apps.
        """
        with self._lock:
            changed = set(self.networks) | {record[0] for record in self.port_network.values()}
            self.networks.clear()
            self.tunnel_ids.clear()
            self.port_network.clear()
            if lose_apps:
                self.vnets_installed = False
        self._notify(changed)

    def fail_after(self, writes: int | None) -> None:
        """Stop answering once `writes` more POST/DELETE calls have been served (None: never)."""
        with self._lock:
            self._writes_left = writes

    def hold(self, network: str, *endpoints: str) -> None:
        """Set up what the controller holds, as if each endpoint had been posted in turn."""
        changed = {network}
        with self._lock:
            self.networks.setdefault(network, [])
            self.tunnel_ids.setdefault(network, [])
            for endpoint in endpoints:
                self._add_port(network, endpoint, changed)
        self._notify(changed)

    def learned(self, network: str) -> list[str]:
        """The ports of a network the controller forwards for: held, and recorded as in it."""
        with self._lock:
            return self._learned(network)

    def learned_ports(self) -> dict[str, list[str]]:
        """Every network -> the ports it forwards for, in order, each once (a port held twice
        forwards once). One snapshot, taken under the lock."""
        with self._lock:
            return {name: list(dict.fromkeys(self._learned(name))) for name in self.networks}

    def set_device(self, device_id: str, available: bool) -> None:
        """A switch as /onos/v1/devices lists it (ONOS keeps a disconnected one, unavailable)."""
        with self._lock:
            self.devices[device_id] = available

    def drop_device(self, device_id: str) -> None:
        with self._lock:
            self.devices.pop(device_id, None)

    def writes(self) -> list[tuple[str, str, object]]:
        """The requests that could change something (POST, DELETE)."""
        return [r for r in self.requests if r[0] != "GET"]

    # -- state, with the lock held ----------------------------------------------------------

    def _learned(self, network: str) -> list[str]:
        return [p for p in self.networks.get(network, []) if self.port_network.get(p, ("",))[0] == network]

    def _add_port(self, network: str, endpoint: str, changed: set[str]) -> None:
        self._next_tunnel += 1
        self.networks[network].append(endpoint)
        self.tunnel_ids.setdefault(network, []).append(self._next_tunnel)
        # The record moves: the network it named stops learning on the port.
        old = self.port_network.get(endpoint)
        if old is not None:
            changed.add(old[0])
        changed.add(network)
        self.port_network[endpoint] = (network, self._next_tunnel)

    def _remove_port(self, network: str, endpoint: str, changed: set[str]) -> bool:
        record = self.port_network.pop(endpoint, None)
        if record is None:
            return False
        changed.update((network, record[0]))
        if endpoint in self.networks[network]:
            self.networks[network].remove(endpoint)
        if record[1] in self.tunnel_ids.get(network, []):
            self.tunnel_ids[network].remove(record[1])
        return True

    def _describe(self, network: str) -> str:
        if network in self.garbled:
            return self.garbled[network]
        endpoints = "".join(f" -{p}\n" for p in self.networks[network])
        tunnels = "".join(f" -{t}\n" for t in self.tunnel_ids.get(network, []))
        return f"Id: {network}\nEndpoints: \n{endpoints}Tunnel Ids: \n{tunnels}Mirror Port: null\n"

    def _notify(self, changed: set[str]) -> None:
        callback = self.on_change
        if callback is None:
            return
        try:
            callback(set(changed))
        except Exception:  # the forwarding side's failure must not take the REST answer down
            log.exception("on_change(%s) failed", sorted(changed))

    # -- the API, with the lock held: an answer and the networks it changed --------------------

    def _answer(self, method: str, path: str, auth: str | None, body: Any, changed: set[str]) -> _Reply:
        if path != "/readyz" and auth != self._auth:  # the manager's probe needs no credentials
            return _Reply(401, {"error": "unauthorized"})
        if path == "/readyz" and method == "GET":
            return _Reply(200 if self.manager_ready else 503, text="ok")
        if not self.onos_up:
            return _Reply(503, text="ONOS is starting")
        if path == "/onos/ui" and method == "GET":
            return _Reply(200, text="<html>ONOS</html>")
        if path.startswith(APPS):
            return self._applications(method, path[len(APPS) :], body)
        if path == DEVICES and method == "GET":
            devices = [{"id": d, "available": a, "type": "SWITCH"} for d, a in self.devices.items()]
            return _Reply(200, {"devices": devices})
        if not path.startswith(VNETS) or not (self.vnets_installed and self.vnets_active):
            return _Reply(404, {"error": "no such resource"})
        return self._vnets(method, path[len(VNETS) :], body, changed)

    def _applications(self, method: str, rest: str, body: Any) -> _Reply:
        if rest == "?activate=true" and method == "POST":
            if self.vnets_installed:
                return _Reply(409, {"message": "already installed"})
            if self.install_fails:
                return _Reply(500, {"message": "bundle failed to start"})
            self.installed_archives.append(body)
            self.vnets_installed = self.vnets_active = True
            return _Reply(200, {"name": VNETS_APP, "state": "ACTIVE"})
        app, _, action = rest.lstrip("/").partition("/")
        if app == VNETS_APP:
            installed = self.vnets_installed
            state = "ACTIVE" if self.vnets_active else "INSTALLED"
        elif app == OPENFLOW_APP:
            installed = self.openflow_state is not None
            state = self.openflow_state
        else:
            installed, state = False, None
        if not installed:
            return _Reply(404, {"message": "App not found"})
        if action == "active" and method == "POST":
            if app == OPENFLOW_APP:
                self.openflow_state = "ACTIVE"
            else:
                self.vnets_active = True
            state = "ACTIVE"
        elif action or method != "GET":
            return _Reply(405, text="method not allowed")
        return _Reply(200, {"name": app, "state": state})

    def _vnets(self, method: str, rest: str, body: Any, changed: set[str]) -> _Reply:
        if rest == "/status" and method == "GET":
            return _Reply(200 if self.ready else 503, text="ok" if self.ready else "starting")
        if rest in ("", "/") and method == "POST":
            name = body.get("networkId") if isinstance(body, dict) else None
            if not name or not isinstance(name, str):
                return _Reply(500, text="java.lang.NullPointerException")
            if name in self.refuse_create:
                return _Reply(409)
            # putIfAbsent upstream: creating an existing network is a silent success.
            if name not in self.networks:
                self.networks[name] = []
                self.tunnel_ids.setdefault(name, [])
                changed.add(name)
            return _Reply(204)
        if rest == "/port" and method in ("POST", "DELETE"):
            if not isinstance(body, dict):
                return _Reply(500, text="java.lang.NullPointerException")
            name = body.get("networkId")
            if not isinstance(name, str) or name not in self.networks:
                return _Reply(409)
            endpoints = [str(e) for e in body.get("networkEndpoints") or []]
            if method == "POST":
                for endpoint in endpoints:
                    self._add_port(name, endpoint, changed)
                return _Reply(204)
            # In order; the first port without a record fails and stops the rest (those
            # before it stay removed: `changed` names them).
            for endpoint in endpoints:
                if not self._remove_port(name, endpoint, changed):
                    return _Reply(500, text="java.lang.NullPointerException")
            return _Reply(200)
        name = unquote(rest.lstrip("/"))
        if method == "GET":
            if name not in self.networks:
                return _Reply(404)
            return _Reply(200, text=self._describe(name))
        if method == "DELETE":
            # Unknown ids are only logged upstream; a known one takes the record of every
            # port it lists along, whichever network that record names.
            if name in self.networks:
                changed.add(name)
            for endpoint in self.networks.pop(name, []):
                record = self.port_network.pop(endpoint, None)
                if record is not None:
                    changed.add(record[0])
            self.tunnel_ids.pop(name, None)
            return _Reply(204)
        return _Reply(405, text="method not allowed")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, reply: _Reply) -> None:
                payload = b""
                ctype = "application/json"
                if reply.text is not None:
                    payload, ctype = reply.text.encode(), "text/plain"
                elif reply.body is not None:
                    payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.headers.get("Content-Type") == "application/octet-stream":
                    return raw
                try:
                    return json.loads(raw or b"null")
                except ValueError:
                    return None  # unreadable: answered as a body without the fields

            def _dispatch(self, method: str) -> None:
                body = self._body() if method in ("POST", "DELETE") else None
                changed: set[str] = set()
                with front._lock:
                    if front._writes_left is not None and method != "GET":
                        if front._writes_left <= 0:
                            self.close_connection = True  # no answer at all: the client times out
                            return
                        front._writes_left -= 1
                    front.requests.append((method, self.path, body))
                    reply = front._answer(method, self.path, self.headers.get("Authorization"), body, changed)
                # Before the answer: a client back from its write finds the forwarding updated.
                if changed:
                    front._notify(changed)
                self._send(reply)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_DELETE(self) -> None:
                self._dispatch("DELETE")

        return Handler
