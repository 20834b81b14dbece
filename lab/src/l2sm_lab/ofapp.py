"""L2S-M forwarding as an os-ken (OpenFlow 1.3) application: the lab's stand-in for ONOS's vnets app.

Every virtual network is its own flood domain with MAC learning; a port in no network is
dropped and nothing crosses networks. Ports are ONOS connect points `of:<16 hex dpid>/<N>`;
the networks come from a store (the vnets REST front) with `learned_ports()`.

Each network gets a key: 24 bits of sha256(name), never 0, the next free value on a collision.
It is the VXLAN VNI, the network's metadata tag and its flow cookie, the same on every switch,
and (unless two live networks collide) the same after a controller restart, so a switch that
still holds an earlier controller's flows never maps a port into another network's tunnel.

Pipeline, per switch (metadata = key << 1 | origin, origin 0 from a pod port, 1 from a tunnel):
  table 0  in_port=<pod port of N>               -> metadata (N, local), goto 1
           in_port=<vxlan port>, tun_id=key(N)   -> metadata (N, tunnel), goto 1   (only where N has pods)
           anything else                         -> drop
  table 1  metadata, in_port, eth_src learned    -> goto 2
           miss                                  -> packet-in (learning) and goto 2
  table 2  (N, any) eth_dst learned on a pod port       -> output that port
           (N, local) eth_dst learned on a tunnel port  -> tun_id=key(N), output that tunnel
           (N, local) flood  -> the other pod ports of N, tun_id=key(N) to every tunnel
           (N, tunnel) flood -> the pod ports of N only (split horizon: the mesh is full)
           anything else     -> drop

All OpenFlow work runs in the app's own event loop (one thread): `reprogram()` only queues an
event, so the REST front may call it from any thread. A change re-reads the whole store and
reprograms, on each switch, the networks whose flows there differ from what is installed (plus
the ones named): their flows are deleted by cookie and reinstalled, learned entries included.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from os_ken.base import app_manager
from os_ken.controller import event as os_ken_event
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3

LOG = logging.getLogger("l2sm_lab.ofapp")

VXLAN_PREFIX = "vxlan-"
KEY_BITS = 24
# The cookie's high half marks our flows; the low bits are the network key (0: base flows).
COOKIE_BASE = 0x4C32_0000_0000_0000
COOKIE_ALL = 0xFFFF_FFFF_FFFF_FFFF
META_EXACT = 0xFFFF_FFFF_FFFF_FFFF
META_ANY_ORIGIN = META_EXACT ^ 1
FROM_LOCAL = 0
FROM_TUNNEL = 1

PRIO_PORT = 100
PRIO_LEARNED = 100
PRIO_FLOOD = 10
PRIO_MISS = 0
# Enough of a packet to read its Ethernet header.
LEARN_MAX_LEN = 64

_ENDPOINT = re.compile(r"of:([0-9a-f]{16})/([1-9][0-9]*)")


def _guarded(handler: Callable[..., None]) -> Callable[..., None]:
    """os-ken's native hub makes TaskExit plain Exception: an exception out of a handler ends
    the app's event loop silently (every later event lost, then senders block on its full
    queue). Log it and carry on instead."""

    @functools.wraps(handler)
    def run(self: Any, ev: Any) -> None:
        try:
            handler(self, ev)
        except Exception:
            LOG.exception("%s failed on %s", handler.__name__, type(ev).__name__)

    return run


class Store(Protocol):
    def learned_ports(self) -> dict[str, list[str]]: ...

    def set_device(self, device_id: str, available: bool) -> None: ...


def device_id(dpid: int) -> str:
    return f"of:{dpid:016x}"


def network_key(name: str, taken: Iterable[int] = ()) -> int:
    """24 bits of sha256(name), never 0; on a collision with `taken` the next free value."""
    used = set(taken)
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:3], "big")
    while key == 0 or key in used:
        key = (key + 1) % (1 << KEY_BITS)
    return key


def cookie_of(key: int) -> int:
    return COOKIE_BASE | key


def metadata(key: int, origin: int) -> int:
    return (key << 1) | origin


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class Spec(NamedTuple):
    """What one network needs on one switch: its key, its pod ports there, the switch's tunnels."""

    key: int
    local: tuple[int, ...]
    tunnels: tuple[int, ...]


@dataclass
class _Switch:
    dp: Any
    ports: dict[int, str] = field(default_factory=dict)
    installed: dict[str, Spec] = field(default_factory=dict)
    # network -> MAC -> port it was learned on
    learned: dict[str, dict[bytes, int]] = field(default_factory=dict)
    # cookie -> flows we installed under it (and have not deleted)
    counts: dict[int, int] = field(default_factory=dict)

    @property
    def dpid(self) -> int:
        return int(self.dp.id)

    def tunnels(self) -> tuple[int, ...]:
        return tuple(sorted(no for no, name in self.ports.items() if name.startswith(VXLAN_PREFIX)))


class EventReprogram(os_ken_event.EventBase):
    def __init__(self, networks: set[str]):
        super().__init__()
        self.networks = networks


class L2smForwarding(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _EVENTS = [EventReprogram]

    def __init__(self, *args: Any, store: Store | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.store: Store | None = store
        self._switches: dict[int, _Switch] = {}
        self._keys: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        self._counts_view: dict[str, int] = {}

    # -- API for other threads ------------------------------------------------------------

    def reprogram(self, networks: set[str]) -> None:
        """Reprogram these networks (and any other the store's state changed) on every switch.
        Safe from any thread: it only queues an event for the app's loop."""
        self.send_event(self.name, EventReprogram(set(networks)))

    def flow_counts(self) -> dict[str, int]:
        """Flows this controller has installed and not deleted, per switch (`of:<dpid>`)."""
        with self._counts_lock:
            return dict(self._counts_view)

    # -- switch life cycle ----------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @_guarded
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if dp.id is None:
            return
        dpid = int(dp.id)
        if ev.state == MAIN_DISPATCHER:
            sw = _Switch(dp=dp, ports={no: _name(p) for no, p in dict(dp.ports or {}).items()})
            self._switches[dpid] = sw
            LOG.info("switch %s connected, %d ports", device_id(dpid), len(sw.ports))
            self._program_switch(sw)
            self._set_device(dpid, True)
        elif ev.state == DEAD_DISPATCHER:
            current = self._switches.get(dpid)
            if current is None or current.dp is not dp:
                return  # an old connection of a switch that has reconnected
            del self._switches[dpid]
            LOG.info("switch %s disconnected", device_id(dpid))
            self._publish_counts()
            self._set_device(dpid, False)

    def _set_device(self, dpid: int, available: bool) -> None:
        if self.store is None:
            return
        try:
            self.store.set_device(device_id(dpid), available)
        except Exception:
            LOG.exception("store.set_device(%s, %s) failed", device_id(dpid), available)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)  # type: ignore[attr-defined]  # made at import
    @_guarded
    def _port_status(self, ev: Any) -> None:
        msg = ev.msg
        sw = self._switches.get(int(msg.datapath.id))
        if sw is None or sw.dp is not msg.datapath:
            return
        ofp = msg.datapath.ofproto
        no, name = int(msg.desc.port_no), _name(msg.desc)
        if no > ofp.OFPP_MAX:
            return
        before = sw.ports.get(no)
        if msg.reason == ofp.OFPPR_DELETE:
            sw.ports.pop(no, None)
        else:
            sw.ports[no] = name
        LOG.info(
            "switch %s port %d %s (%s)", device_id(sw.dpid), no, name, _REASONS.get(msg.reason, msg.reason)
        )
        if msg.reason == ofp.OFPPR_MODIFY and before == name:
            return  # link state only: nothing the flows depend on
        # A port added or deleted: whatever the diff finds, also redo the networks holding it
        # (every network on the switch for a tunnel), so no learned entry outlives the port.
        if name.startswith(VXLAN_PREFIX) or (before or "").startswith(VXLAN_PREFIX):
            touched = set(sw.installed)
        else:
            touched = {n for n, spec in sw.installed.items() if no in spec.local}
        self._reconcile(touched, only=sw.dpid)

    # -- programming ----------------------------------------------------------------------

    @set_ev_cls(EventReprogram)
    @_guarded
    def _on_reprogram(self, ev: EventReprogram) -> None:
        self._reconcile(ev.networks)

    def _desired(self) -> dict[str, dict[int, list[int]]]:
        """network -> dpid -> pod ports, from the store; assigns and releases network keys.
        A port listed by two networks goes to the first by name (and a warning)."""
        ports = self.store.learned_ports() if self.store is not None else {}
        for gone in set(self._keys) - set(ports):
            del self._keys[gone]
        for name in sorted(set(ports) - set(self._keys)):
            self._keys[name] = network_key(name, self._keys.values())
        owner: dict[tuple[int, int], str] = {}
        wanted: dict[str, dict[int, list[int]]] = {name: {} for name in ports}
        for name in sorted(ports):
            for endpoint in ports[name]:
                m = _ENDPOINT.fullmatch(endpoint)
                if m is None:
                    LOG.warning("network %s: ignoring endpoint %r", name, endpoint)
                    continue
                point = (int(m.group(1), 16), int(m.group(2)))
                held = owner.setdefault(point, name)
                if held != name:
                    LOG.warning("%s is in networks %s and %s: it forwards in %s", endpoint, held, name, held)
                    continue
                local = wanted[name].setdefault(point[0], [])
                if point[1] not in local:
                    local.append(point[1])
        return wanted

    def _specs_for(self, sw: _Switch, wanted: dict[str, dict[int, list[int]]]) -> dict[str, Spec]:
        tunnels = sw.tunnels()
        specs: dict[str, Spec] = {}
        for name, per_switch in wanted.items():
            # Only ports the switch has (a port that appears later comes with a port status).
            local = tuple(
                sorted(
                    p
                    for p in per_switch.get(sw.dpid, [])
                    if p in sw.ports and not sw.ports[p].startswith(VXLAN_PREFIX)
                )
            )
            if local:
                specs[name] = Spec(self._keys[name], local, tunnels)
        return specs

    def _reconcile(self, touched: set[str], only: int | None = None) -> None:
        wanted = self._desired()
        for sw in list(self._switches.values()):
            if only is not None and sw.dpid != only:
                continue
            specs = self._specs_for(sw, wanted)
            redo = {
                n
                for n in set(sw.installed) | set(specs)
                if sw.installed.get(n) != specs.get(n) or (n in touched and n in specs)
            }
            if not redo:
                continue
            # Deletes first: a new network may take a key a deleted one has just released.
            for name in sorted(redo):
                old = sw.installed.pop(name, None)
                if old is not None:
                    self._delete_cookie(sw, cookie_of(old.key))
                sw.learned.pop(name, None)
            for name in sorted(redo):
                if name in specs:
                    self._install_network(sw, name, specs[name])
            LOG.info(
                "switch %s: reprogrammed %s (%d flows installed)",
                device_id(sw.dpid),
                ", ".join(sorted(redo)),
                sum(sw.counts.values()),
            )
        self._publish_counts()

    def _program_switch(self, sw: _Switch) -> None:
        """Everything on a switch that has (re)connected: it may hold any earlier flows."""
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(
            parser.OFPFlowMod(
                dp,
                command=ofp.OFPFC_DELETE,
                table_id=ofp.OFPTT_ALL,
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
                match=parser.OFPMatch(),
            )
        )
        sw.counts.clear()
        base = cookie_of(0)
        self._add(sw, base, 0, PRIO_MISS, parser.OFPMatch(), [])  # drop
        to_controller = parser.OFPActionOutput(ofp.OFPP_CONTROLLER, LEARN_MAX_LEN)
        self._add(sw, base, 1, PRIO_MISS, parser.OFPMatch(), [to_controller], goto=2)
        for name, spec in sorted(self._specs_for(sw, self._desired()).items()):
            self._install_network(sw, name, spec)
        self._publish_counts()

    def _install_network(self, sw: _Switch, name: str, spec: Spec) -> None:
        parser = sw.dp.ofproto_parser
        cookie = cookie_of(spec.key)
        local_meta, tunnel_meta = metadata(spec.key, FROM_LOCAL), metadata(spec.key, FROM_TUNNEL)
        for port in spec.local:
            self._add(sw, cookie, 0, PRIO_PORT, parser.OFPMatch(in_port=port), [], meta=local_meta, goto=1)
        for port in spec.tunnels:
            match = parser.OFPMatch(in_port=port, tunnel_id=spec.key)
            self._add(sw, cookie, 0, PRIO_PORT, match, [], meta=tunnel_meta, goto=1)
        to_pods = [parser.OFPActionOutput(p) for p in spec.local]
        to_tunnels = [parser.OFPActionSetField(tunnel_id=spec.key)] + [
            parser.OFPActionOutput(p) for p in spec.tunnels
        ]
        from_local = parser.OFPMatch(metadata=(local_meta, META_EXACT))
        self._add(sw, cookie, 2, PRIO_FLOOD, from_local, to_pods + (to_tunnels if spec.tunnels else []))
        if spec.tunnels:
            self._add(sw, cookie, 2, PRIO_FLOOD, parser.OFPMatch(metadata=(tunnel_meta, META_EXACT)), to_pods)
        sw.installed[name] = spec
        sw.learned[name] = {}

    def _add(
        self,
        sw: _Switch,
        cookie: int,
        table: int,
        priority: int,
        match: Any,
        actions: list[Any],
        *,
        meta: int | None = None,
        goto: int | None = None,
    ) -> None:
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst: list[Any] = []
        if actions:
            inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
        if meta is not None:
            inst.append(parser.OFPInstructionWriteMetadata(meta, META_EXACT))
        if goto is not None:
            inst.append(parser.OFPInstructionGotoTable(goto))
        dp.send_msg(
            parser.OFPFlowMod(
                dp, cookie=cookie, table_id=table, priority=priority, match=match, instructions=inst
            )
        )
        sw.counts[cookie] = sw.counts.get(cookie, 0) + 1

    def _delete_cookie(self, sw: _Switch, cookie: int) -> None:
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(
            parser.OFPFlowMod(
                dp,
                cookie=cookie,
                cookie_mask=COOKIE_ALL,
                command=ofp.OFPFC_DELETE,
                table_id=ofp.OFPTT_ALL,
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
                match=parser.OFPMatch(),
            )
        )
        sw.counts.pop(cookie, None)

    def _delete_strict(self, sw: _Switch, cookie: int, table: int, priority: int, match: Any) -> None:
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(
            parser.OFPFlowMod(
                dp,
                cookie=cookie,
                cookie_mask=COOKIE_ALL,
                command=ofp.OFPFC_DELETE_STRICT,
                table_id=table,
                priority=priority,
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
                match=match,
            )
        )
        if sw.counts.get(cookie, 0) > 0:
            sw.counts[cookie] -= 1

    def _publish_counts(self) -> None:
        view = {device_id(sw.dpid): sum(sw.counts.values()) for sw in self._switches.values()}
        with self._counts_lock:
            self._counts_view = view

    # -- learning -------------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)  # type: ignore[attr-defined]  # made at import
    @_guarded
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        sw = self._switches.get(int(msg.datapath.id))
        if sw is None or sw.dp is not msg.datapath or len(msg.data) < 14:
            return
        in_port = int(msg.match["in_port"])
        src = bytes(msg.data[6:12])
        if src[0] & 1:
            return  # a group address is no station
        name, origin = self._network_of(sw, in_port, msg.match)
        if name is None:
            return  # sent under flows that have since been replaced
        spec = sw.installed[name]
        learned = sw.learned.setdefault(name, {})
        previous = learned.get(src)
        if previous == in_port:
            return  # packets that were in flight while the entry went in
        parser = sw.dp.ofproto_parser
        cookie = cookie_of(spec.key)
        if previous is not None:
            old_origin = FROM_TUNNEL if previous in spec.tunnels else FROM_LOCAL
            self._delete_strict(
                sw,
                cookie,
                1,
                PRIO_LEARNED,
                parser.OFPMatch(
                    in_port=previous,
                    metadata=(metadata(spec.key, old_origin), META_EXACT),
                    eth_src=mac_text(src),
                ),
            )
            self._delete_strict(sw, cookie, 2, PRIO_LEARNED, self._dst_match(parser, spec, src, old_origin))
        learned[src] = in_port
        self._add(
            sw,
            cookie,
            1,
            PRIO_LEARNED,
            parser.OFPMatch(
                in_port=in_port, metadata=(metadata(spec.key, origin), META_EXACT), eth_src=mac_text(src)
            ),
            [],
            goto=2,
        )
        if origin == FROM_TUNNEL:
            out = [parser.OFPActionSetField(tunnel_id=spec.key), parser.OFPActionOutput(in_port)]
        else:
            out = [parser.OFPActionOutput(in_port)]
        self._add(sw, cookie, 2, PRIO_LEARNED, self._dst_match(parser, spec, src, origin), out)
        self._publish_counts()
        LOG.debug("switch %s network %s: %s on port %d", device_id(sw.dpid), name, mac_text(src), in_port)

    @staticmethod
    def _dst_match(parser: Any, spec: Spec, mac: bytes, origin: int) -> Any:
        if origin == FROM_TUNNEL:
            # Only what comes from a pod goes back out to a tunnel (split horizon).
            return parser.OFPMatch(
                metadata=(metadata(spec.key, FROM_LOCAL), META_EXACT), eth_dst=mac_text(mac)
            )
        return parser.OFPMatch(
            metadata=(metadata(spec.key, FROM_LOCAL), META_ANY_ORIGIN), eth_dst=mac_text(mac)
        )

    def _network_of(self, sw: _Switch, in_port: int, match: Any) -> tuple[str | None, int]:
        """The network a packet-in belongs to under the flows installed now, and its origin."""
        tunnel_key = match.get("tunnel_id")
        if in_port in sw.tunnels():
            if tunnel_key is None:
                meta = match.get("metadata")
                tunnel_key = None if meta is None else int(meta) >> 1
            for name, spec in sw.installed.items():
                if spec.key == tunnel_key and in_port in spec.tunnels:
                    return name, FROM_TUNNEL
            return None, FROM_TUNNEL
        for name, spec in sw.installed.items():
            if in_port in spec.local:
                meta = match.get("metadata")
                if meta is not None and int(meta) >> 1 != spec.key:
                    return None, FROM_LOCAL
                return name, FROM_LOCAL
        return None, FROM_LOCAL


def _name(port: Any) -> str:
    name = port.name
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


_REASONS = {0: "add", 1: "delete", 2: "modify"}
