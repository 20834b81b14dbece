"""Client for the L2S-M SDN controller: the vnets REST API and ONOS's device list.

Standard library only, so the charm, the lab and the tests share one client without extra
dependencies. Every failure is one of the typed errors below, never a bare urllib error.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

VNETS_PATH = "/onos/vnets/api"
DEVICES_PATH = "/onos/v1/devices"
APPLICATIONS_PATH = "/onos/v1/applications"
VNETS_APP = "org.l2sm.vnets"
# ONOS's OpenFlow provider: without it active no switch can connect.
OPENFLOW_APP = "org.onosproject.openflow"
DEFAULT_TIMEOUT = 5.0

# fullmatch only: `$` would let a trailing newline through.
_ENDPOINT = re.compile(r"of:[0-9a-f]{16}/[1-9][0-9]*")
_TUNNEL_ID = re.compile(r"-?[0-9]+")


class ControllerError(Exception):
    """Base of every error the controller client raises."""


class ControllerUnreachable(ControllerError):
    """No complete HTTP answer: connection refused, reset or closed before the answer ended
    (a controller killed mid-response), a status line that is not HTTP, DNS failure or timeout."""


class ControllerUnauthorized(ControllerError):
    """The controller refused the credentials (401 or 403)."""


class NetworkMissing(ControllerError):
    """The controller does not know the network (404)."""


class ControllerConflict(ControllerError):
    """The controller refused the change (409): the vnets app's only error answer."""


class ControllerResponseError(ControllerError):
    """Any other answer the API does not document (5xx, unexpected codes, bad JSON)."""


class UnreadableNetwork(ControllerResponseError):
    """The controller described a network in a text we cannot read: what it holds is
    unknown, so nothing may be added to it or removed from it on a guess."""


def check_endpoint(endpoint: str) -> str:
    """Return endpoint if it is an ONOS connect point `of:<16 hex>/<port number>`."""
    if not isinstance(endpoint, str) or not _ENDPOINT.fullmatch(endpoint):
        raise ValueError(f"{endpoint!r} is not a switch port: expected of:<16 lowercase hex>/<N>")
    return endpoint


def parse_network_text(name: str, text: str) -> list[str]:
    """The endpoints of the vnets app's text for one network (its `Network.toString()`), in
    order and with repeats: the app keeps them in a list and never checks for duplicates.

    The text is, line by line: `Id: <name>`, `Endpoints: `, one ` -of:<dpid>/<port>` per
    endpoint, `Tunnel Ids: `, one ` -<number>` per tunnel id, then `Mirror Port:
    <endpoint|null>` in releases that have mirroring (earlier ones end after the tunnel ids).
    Anything else (another layout, another network's id, an endpoint we cannot read) is an
    UnreadableNetwork: a guess here could post a port twice or leave a stale one behind.
    """

    def refuse(why: str) -> UnreadableNetwork:
        sample = text[:120].encode("unicode_escape").decode()
        return UnreadableNetwork(f"network {name}: cannot read the controller's answer ({why}): {sample!r}")

    if not isinstance(text, str) or not text.endswith("\n"):
        raise refuse("it does not end with a newline")
    lines = text[:-1].split("\n")
    if lines[0] != f"Id: {name}":
        raise refuse(f"first line is not 'Id: {name}'")
    if len(lines) < 2 or lines[1].rstrip(" ") != "Endpoints:":
        raise refuse("no 'Endpoints:' line")
    endpoints: list[str] = []
    index = 2
    while index < len(lines) and lines[index].startswith(" -"):
        endpoint = lines[index][2:]
        if not _ENDPOINT.fullmatch(endpoint):
            raise refuse(f"endpoint {endpoint[:40]!r} is not of:<16 hex>/<port>")
        endpoints.append(endpoint)
        index += 1
    if index >= len(lines) or lines[index].rstrip(" ") != "Tunnel Ids:":
        raise refuse("no 'Tunnel Ids:' line after the endpoints")
    index += 1
    while index < len(lines) and lines[index].startswith(" -"):
        if not _TUNNEL_ID.fullmatch(lines[index][2:]):
            raise refuse(f"tunnel id {lines[index][2:40]!r} is not a number")
        index += 1
    if index == len(lines):
        return endpoints  # a release without port mirroring
    if index != len(lines) - 1 or not lines[index].startswith("Mirror Port: "):
        raise refuse("it does not end after the tunnel ids or with one 'Mirror Port:' line")
    mirror = lines[index][len("Mirror Port: ") :]
    if mirror != "null" and not _ENDPOINT.fullmatch(mirror):
        raise refuse(f"mirror port {mirror[:40]!r} is neither null nor an endpoint")
    return endpoints


@dataclass(frozen=True)
class Device:
    """A switch as ONOS sees it."""

    id: str
    available: bool


class VnetsClient:
    """Talks to one controller at base_url (scheme, host and port, e.g. http://10.1.2.3:8181)."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{base_url!r} is not an http(s) URL with a host")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._auth = f"Basic {token}"

    # -- transport ------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None
        headers = {"Authorization": self._auth, "Accept": "application/json, text/plain"}
        if isinstance(body, bytes):
            data = body
            headers["Content-Type"] = "application/octet-stream"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                payload = exc.read()
            except (http.client.HTTPException, OSError):
                payload = b""  # the code was answered; only the detail was cut off
            finally:
                exc.close()
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            raise ControllerUnreachable(f"{method} {self.base_url}{path}: {exc}") from exc
        except http.client.HTTPException as exc:
            # No OSError (IncompleteRead, BadStatusLine): a controller killed mid-answer.
            why = f"{type(exc).__name__}: {exc}"
            raise ControllerUnreachable(f"{method} {self.base_url}{path}: answer cut off ({why})") from exc
        what = f"{method} {path} answered {status}: {payload[:200].decode(errors='replace')}"
        if status in (401, 403):
            raise ControllerUnauthorized(what)
        if status == 404:
            raise NetworkMissing(what)
        if status == 409:
            raise ControllerConflict(what)
        raise ControllerResponseError(what)

    def _expect(self, status: int, payload: bytes, ok: tuple[int, ...], what: str) -> bytes:
        if status not in ok:
            raise ControllerResponseError(f"{what} answered {status}, expected one of {ok}")
        return payload

    # -- vnets API ------------------------------------------------------------------------

    def status(self) -> None:
        """Return when the vnets API answers 200; raise otherwise."""
        status, payload = self._request("GET", f"{VNETS_PATH}/status")
        self._expect(status, payload, (200,), "GET status")

    def is_ready(self) -> bool:
        """True when the vnets API answers; any error means not ready."""
        try:
            self.status()
        except ControllerError:
            return False
        return True

    def create_network(self, name: str) -> None:
        status, payload = self._request("POST", VNETS_PATH, {"networkId": name})
        self._expect(status, payload, (200, 201, 204), f"create network {name}")

    def describe_network(self, name: str) -> str:
        """The controller's own text for the network (`network_ports` parses it)."""
        status, payload = self._request("GET", f"{VNETS_PATH}/{_quote(name)}")
        return self._expect(status, payload, (200,), f"get network {name}").decode(errors="replace")

    def network_ports(self, name: str) -> list[str]:
        """The ports the network holds, with repeats. NetworkMissing when the controller does
        not know it; UnreadableNetwork when its answer cannot be read (never a guess)."""
        return parse_network_text(name, self.describe_network(name))

    def network_exists(self, name: str) -> bool:
        try:
            self.describe_network(name)
        except NetworkMissing:
            return False
        return True

    def delete_network(self, name: str) -> None:
        status, payload = self._request("DELETE", f"{VNETS_PATH}/{_quote(name)}")
        self._expect(status, payload, (200, 204), f"delete network {name}")

    def add_ports(self, name: str, endpoints: list[str]) -> None:
        body = {"networkId": name, "networkEndpoints": [check_endpoint(e) for e in endpoints]}
        status, payload = self._request("POST", f"{VNETS_PATH}/port", body)
        self._expect(status, payload, (200, 201, 204), f"add ports to {name}")

    def remove_ports(self, name: str, endpoints: list[str]) -> None:
        """Each endpoint loses ONE copy from the network's list, and the controller forgets
        which network the port is in (it keeps that per port, not per network: another
        network holding the same port stops learning on it). A port the controller has no
        record of is a 500, and the call stops there: remove one port per call."""
        body = {"networkId": name, "networkEndpoints": [check_endpoint(e) for e in endpoints]}
        status, payload = self._request("DELETE", f"{VNETS_PATH}/port", body)
        self._expect(status, payload, (200, 204), f"remove ports from {name}")

    # -- ONOS core API --------------------------------------------------------------------

    def onos_ready(self) -> bool:
        """ONOS's web container answers: apps can be installed (the vnets API may not be yet)."""
        try:
            status, _ = self._request("GET", "/onos/ui")
        except ControllerError:
            return False
        return status == 200

    def app_state(self, app: str = VNETS_APP) -> str | None:
        """ACTIVE or INSTALLED, or None when ONOS does not have the app."""
        try:
            status, payload = self._request("GET", f"{APPLICATIONS_PATH}/{_quote(app)}")
        except NetworkMissing:
            return None
        self._expect(status, payload, (200,), f"GET application {app}")
        try:
            return str(json.loads(payload)["state"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ControllerResponseError(f"GET application {app}: unexpected body: {exc}") from exc

    def activate_app(self, app: str = VNETS_APP) -> None:
        """Activate an installed application (INSTALLED -> ACTIVE)."""
        status, payload = self._request("POST", f"{APPLICATIONS_PATH}/{_quote(app)}/active")
        self._expect(status, payload, (200, 204), f"activate application {app}")

    def install_app(self, archive: bytes) -> None:
        """Install and activate an ONOS application archive (.oar), as `onos-app install!` does."""
        status, payload = self._request("POST", f"{APPLICATIONS_PATH}?activate=true", archive)
        self._expect(status, payload, (200, 201), "install application")

    def devices(self) -> list[Device]:
        """Switches ONOS knows, connected or not."""
        status, payload = self._request("GET", DEVICES_PATH)
        self._expect(status, payload, (200,), "GET devices")
        try:
            doc = json.loads(payload)
            return [Device(id=str(d["id"]), available=bool(d.get("available"))) for d in doc["devices"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ControllerResponseError(f"GET devices: unexpected body: {exc}") from exc


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")
