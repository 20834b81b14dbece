"""A real HTTP server speaking the L2S-M controller's REST API, for tests.

It keeps networks and ports in memory, like the vnets app, answers with the vnets app's
status codes, checks HTTP Basic credentials, and can be "restarted" (state lost) or taken
down, which is what the charm's resync must cope with.

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
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

VNETS = "/onos/vnets/api"
APPS = "/onos/v1/applications"
OPENFLOW_APP = "org.onosproject.openflow"


class FakeController:
    def __init__(self, username: str = "karaf", password: str = "karaf"):
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
        # After this many more writes the controller stops answering (a timeout mid-resync).
        self._writes_left: int | None = None
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeController:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def restart(self, lose_apps: bool = False) -> None:
        """What an ONOS restart does to the vnets app: every network and port is gone.

        A new container (pod recreated) also loses the installed app: lose_apps.
        """
        with self._lock:
            self.networks.clear()
            self.tunnel_ids.clear()
            self.port_network.clear()
            if lose_apps:
                self.vnets_installed = False

    def fail_after(self, writes: int | None) -> None:
        """Stop answering once `writes` more POST/DELETE calls have been served (None: never)."""
        with self._lock:
            self._writes_left = writes

    def hold(self, network: str, *endpoints: str) -> None:
        """Set up what the controller holds, as if each endpoint had been posted in turn."""
        with self._lock:
            self.networks.setdefault(network, [])
            self.tunnel_ids.setdefault(network, [])
            for endpoint in endpoints:
                self._add_port(network, endpoint)

    def learned(self, network: str) -> list[str]:
        """The ports of a network the controller forwards for: held, and recorded as in it."""
        return [p for p in self.networks.get(network, []) if self.port_network.get(p, ("",))[0] == network]

    def writes(self) -> list[tuple[str, str, object]]:
        """The requests that could change something (POST, DELETE)."""
        return [r for r in self.requests if r[0] != "GET"]

    def _add_port(self, network: str, endpoint: str) -> None:
        self._next_tunnel += 1
        self.networks[network].append(endpoint)
        self.tunnel_ids.setdefault(network, []).append(self._next_tunnel)
        self.port_network[endpoint] = (network, self._next_tunnel)

    def _remove_port(self, network: str, endpoint: str) -> bool:
        record = self.port_network.pop(endpoint, None)
        if record is None:
            return False
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

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, body: object = None, text: str | None = None):
                payload = b""
                ctype = "application/json"
                if text is not None:
                    payload, ctype = text.encode(), "text/plain"
                elif body is not None:
                    payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.headers.get("Content-Type") == "application/octet-stream":
                    return raw
                return json.loads(raw or b"null")

            def _dispatch(self, method: str):
                body = self._body() if method in ("POST", "DELETE") else None
                with fake._lock:
                    if fake._writes_left is not None and method != "GET":
                        if fake._writes_left <= 0:
                            self.close_connection = True  # no answer at all: the client times out
                            return None
                        fake._writes_left -= 1
                    fake.requests.append((method, self.path, body))
                    if self.path == "/readyz":
                        return self._route(method, body)
                    if self.headers.get("Authorization") != fake._auth:
                        return self._reply(401, {"error": "unauthorized"})
                    return self._route(method, body)

            def _route(self, method: str, body):
                path = self.path
                if path == "/readyz" and method == "GET":
                    return self._reply(200 if fake.manager_ready else 503, text="ok")
                if not fake.onos_up:
                    return self._reply(503, text="ONOS is starting")
                if path == "/onos/ui" and method == "GET":
                    return self._reply(200, text="<html>ONOS</html>")
                if path.startswith(APPS):
                    return self._applications(method, path[len(APPS) :], body)
                if path == "/onos/v1/devices" and method == "GET":
                    devices = [{"id": d, "available": a, "type": "SWITCH"} for d, a in fake.devices.items()]
                    return self._reply(200, {"devices": devices})
                if not path.startswith(VNETS) or not (fake.vnets_installed and fake.vnets_active):
                    return self._reply(404, {"error": "no such resource"})
                return self._vnets(method, path[len(VNETS) :], body)

            def _applications(self, method: str, rest: str, body):
                if rest == "?activate=true" and method == "POST":
                    if fake.vnets_installed:
                        return self._reply(409, {"message": "already installed"})
                    if fake.install_fails:
                        return self._reply(500, {"message": "bundle failed to start"})
                    fake.installed_archives.append(body)
                    fake.vnets_installed = fake.vnets_active = True
                    return self._reply(200, {"name": "org.l2sm.vnets", "state": "ACTIVE"})
                app, _, action = rest.lstrip("/").partition("/")
                if app == "org.l2sm.vnets":
                    installed = fake.vnets_installed
                    state = "ACTIVE" if fake.vnets_active else "INSTALLED"
                elif app == OPENFLOW_APP:
                    installed = fake.openflow_state is not None
                    state = fake.openflow_state
                else:
                    installed, state = False, None
                if not installed:
                    return self._reply(404, {"message": "App not found"})
                if action == "active" and method == "POST":
                    if app == OPENFLOW_APP:
                        fake.openflow_state = "ACTIVE"
                    else:
                        fake.vnets_active = True
                    state = "ACTIVE"
                elif action or method != "GET":
                    return self._reply(405, text="method not allowed")
                return self._reply(200, {"name": app, "state": state})

            def _vnets(self, method: str, rest: str, body):
                if rest == "/status" and method == "GET":
                    return self._reply(200 if fake.ready else 503, text="ok" if fake.ready else "starting")
                if rest in ("", "/") and method == "POST":
                    name = body.get("networkId") if isinstance(body, dict) else None
                    if not name:
                        return self._reply(500, text="java.lang.NullPointerException")
                    if name in fake.refuse_create:
                        return self._reply(409)
                    # putIfAbsent upstream: creating an existing network is a silent success.
                    fake.networks.setdefault(name, [])
                    fake.tunnel_ids.setdefault(name, [])
                    return self._reply(204)
                if rest == "/port" and method in ("POST", "DELETE"):
                    name = body.get("networkId")
                    if name not in fake.networks:
                        return self._reply(409)
                    endpoints = list(body.get("networkEndpoints") or [])
                    if method == "POST":
                        for endpoint in endpoints:
                            fake._add_port(name, endpoint)
                        return self._reply(204)
                    # In order; the first port without a record fails and stops the rest.
                    for endpoint in endpoints:
                        if not fake._remove_port(name, endpoint):
                            return self._reply(500, text="java.lang.NullPointerException")
                    return self._reply(200)
                name = unquote(rest.lstrip("/"))
                if method == "GET":
                    if name not in fake.networks:
                        return self._reply(404)
                    return self._reply(200, text=fake._describe(name))
                if method == "DELETE":
                    # Unknown ids are only logged upstream; a known one takes the record of every
                    # port it lists along, whichever network that record names.
                    for endpoint in fake.networks.pop(name, []):
                        fake.port_network.pop(endpoint, None)
                    fake.tunnel_ids.pop(name, None)
                    return self._reply(204)
                return self._reply(405, text="method not allowed")

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def do_DELETE(self):
                self._dispatch("DELETE")

        return Handler
