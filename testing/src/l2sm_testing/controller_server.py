"""A real HTTP server speaking the L2S-M controller's REST API, for tests.

It keeps networks and ports in memory, like the vnets app, answers with the vnets app's
status codes, checks HTTP Basic credentials, and can be "restarted" (state lost) or taken
down, which is what the charm's resync must cope with.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

VNETS = "/onos/vnets/api"


class FakeController:
    def __init__(self, username: str = "karaf", password: str = "karaf"):
        self.networks: dict[str, set[str]] = {}
        self.devices: dict[str, bool] = {}
        self.requests: list[tuple[str, str, object]] = []
        self.ready = True  # the vnets status answer once the app runs
        self.onos_up = True  # ONOS core (web UI and /onos/v1) answering
        self.vnets_installed = True
        self.vnets_active = True  # installed apps may sit INSTALLED until activated
        self.installed_archives: list[bytes] = []
        self.install_fails = False  # ONOS refusing the archive (500)
        self.manager_ready = True  # the manager's /readyz, served here for convenience
        # Names whose creation the controller refuses (409), as it does on internal errors.
        self.refuse_create: set[str] = set()
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
            if lose_apps:
                self.vnets_installed = False

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
                if path == "/onos/v1/applications/org.l2sm.vnets" and method == "GET":
                    if not fake.vnets_installed:
                        return self._reply(404, {"message": "App not found"})
                    state = "ACTIVE" if fake.vnets_active else "INSTALLED"
                    return self._reply(200, {"name": "org.l2sm.vnets", "state": state})
                if path == "/onos/v1/applications/org.l2sm.vnets/active" and method == "POST":
                    if not fake.vnets_installed:
                        return self._reply(404, {"message": "App not found"})
                    fake.vnets_active = True
                    return self._reply(200, {"name": "org.l2sm.vnets", "state": "ACTIVE"})
                if path == "/onos/v1/applications?activate=true" and method == "POST":
                    if fake.vnets_installed:
                        return self._reply(409, {"message": "already installed"})
                    if fake.install_fails:
                        return self._reply(500, {"message": "bundle failed to start"})
                    fake.installed_archives.append(body)
                    fake.vnets_installed = fake.vnets_active = True
                    return self._reply(200, {"name": "org.l2sm.vnets", "state": "ACTIVE"})
                if path == "/onos/v1/devices" and method == "GET":
                    devices = [{"id": d, "available": a, "type": "SWITCH"} for d, a in fake.devices.items()]
                    return self._reply(200, {"devices": devices})
                if not path.startswith(VNETS) or not (fake.vnets_installed and fake.vnets_active):
                    return self._reply(404, {"error": "no such resource"})
                rest = path[len(VNETS) :]
                if rest == "/status" and method == "GET":
                    return self._reply(200 if fake.ready else 503, text="ok" if fake.ready else "starting")
                if rest in ("", "/") and method == "POST":
                    name = body.get("networkId")
                    if not name or name in fake.refuse_create:
                        return self._reply(500, text="internal error")
                    # putIfAbsent upstream: creating an existing network is a silent success.
                    fake.networks.setdefault(name, set())
                    return self._reply(204)
                if rest == "/port" and method in ("POST", "DELETE"):
                    name = body.get("networkId")
                    if name not in fake.networks:
                        return self._reply(409, text="The network does not exist")
                    endpoints = list(body.get("networkEndpoints") or [])
                    if method == "POST":
                        fake.networks[name] |= set(endpoints)
                        return self._reply(204)
                    # Upstream removes in order and fails (500) at the first port it does not hold.
                    for endpoint in endpoints:
                        if endpoint not in fake.networks[name]:
                            return self._reply(500, text="java.lang.NullPointerException")
                        fake.networks[name].discard(endpoint)
                    return self._reply(200)
                name = unquote(rest.lstrip("/"))
                if method == "GET":
                    if name not in fake.networks:
                        return self._reply(404, text="not found")
                    ports = "".join(f" -{p}\n" for p in sorted(fake.networks[name]))
                    return self._reply(200, text=f"Id: {name}\nEndpoints: \n{ports}Mirror Port: null\n")
                if method == "DELETE":
                    fake.networks.pop(name, None)  # unknown ids are only logged upstream
                    return self._reply(204)
                return self._reply(405, text="method not allowed")

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def do_DELETE(self):
                self._dispatch("DELETE")

        return Handler
