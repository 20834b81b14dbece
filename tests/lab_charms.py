"""The real charms of a bundle, run with ops.testing and chained through their relation data
as Juju would carry it, for tests/test_lab_matches_charms.py.

Each l2sm-network application is one Context (the leader); each KNF unit is one Context of
its charm, its application's units sharing one FakeCluster (the StatefulSet the leader
patches, the pods, the interface plans the KNF library applied). The chain:

1. every network answers with its name, cidr and MTU (no member has asked yet);
2. every KNF unit hears them and publishes its request (`published_request`); the leader
   patches the pod template;
3. every network hears all its members' requests (`members_relation`) and answers;
4. the pods restart with their L2S-M interfaces; every KNF unit hears the answers
   (`network_relation`), configures its interfaces and its workload: content servers
   first, so a cache hears its origin's URLs as they were published.

Every charm has modules named `charm` and `models`: each charm module is loaded by path under
a name of its own, its `models` in sys.modules only while it loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from ops import testing

from l2sm_charmlib.l2sm_controller import controller_relation
from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_core import knf
from l2sm_core.cdn import content as manifests
from l2sm_knf.l2sm_network import (
    FakeCluster,
    NetworkProviderAppData,
    NetworkRequirerUnitData,
    members_relation,
    network_relation,
    published_answer,
    published_request,
)
from l2sm_lab.bundle import NETWORK_CHARM, NETWORK_INTERFACE, App, Bundle
from l2sm_lab.plan import CACHE, CONTENT_SERVER, ROUTER, Paths
from l2sm_testing import charms
from l2sm_testing.charms import charm_class
from l2sm_testing.fake_kube import FakeKube

MODEL = "cdn"
NGINX_OK = testing.Exec(["nginx"], return_code=0)
NFT_OK = testing.Exec(["nft"], return_code=0)
# Workload containers of each CDN charm, and the fabric containers of their pods.
CONTAINERS = {CONTENT_SERVER: ("nginx", "jobs"), CACHE: ("nginx", "jobs"), ROUTER: ("router",)}


def load_charm(charm_dir: Path) -> ModuleType:
    return charms.load_charm(charm_dir, "lab_matches")


def charm_paths(module: ModuleType) -> Paths:
    """The container paths the charm itself uses ("" for those it has none of)."""
    return Paths(
        content_dir=getattr(module, "CONTENT_DIR", ""),
        runtime_dir=getattr(module, "RUNTIME_DIR", ""),
        nginx_conf=getattr(module, "NGINX_CONF", ""),
        status_dir=getattr(module, "STATUS_DIR", ""),
    )


def joined_networks(bundle: Bundle, app: App) -> list[str]:
    """The network applications a KNF application joined (any l2sm_network endpoint)."""
    return sorted(
        {
            other
            for endpoint, interface in app.charm.requires.items()
            if interface == NETWORK_INTERFACE
            for other, _ in bundle.related(app.name, endpoint)
            if other in bundle.apps and bundle.apps[other].charm.name == NETWORK_CHARM
        }
    )


def _relation(state: testing.State, rid: int) -> testing.Relation:
    relation = state.get_relation(rid)
    assert isinstance(relation, testing.Relation)
    return relation


def _replace_relations(state: testing.State, relations: list[testing.RelationBase]) -> testing.State:
    ids = {r.id for r in relations}
    kept = {r for r in state.relations if r.id not in ids}
    return dataclasses.replace(state, relations=kept | set(relations))


class NetworkApp:
    """One l2sm-network application: its leader, related to the controller and to each KNF
    application on `network`."""

    def __init__(self, app: App, module: ModuleType, juju_version: str, members: list[str]):
        self.app = app
        self.ctx = testing.Context(charm_class(module), app_name=app.name, juju_version=juju_version)
        self.relations = {
            m: testing.Relation("network", remote_app_name=m, remote_units_data={}) for m in members
        }
        self.state = testing.State(
            leader=True,
            model=testing.Model(name=MODEL),
            config=dict(app.given),
            relations={controller_relation(), *self.relations.values()},
        )

    def relation_id(self, member: str) -> int:
        return self.relations[member].id

    def configure(self) -> None:
        self.state = self.ctx.run(self.ctx.on.config_changed(), self.state)

    def hear(self, requests: dict[str, dict[int, NetworkRequirerUnitData]]) -> None:
        """The members' requests, as their KNF library published them; one relation-changed."""
        relations: list[testing.RelationBase] = [
            members_relation(
                member,
                dict(requests[member]),
                id=rel.id,
                local_app_data=dict(self.state.get_relation(rel.id).local_app_data),
            )
            for member, rel in self.relations.items()
        ]
        self.state = _replace_relations(self.state, relations)
        if not relations:
            return
        first = self.state.get_relation(relations[0].id)
        self.state = self.ctx.run(self.ctx.on.relation_changed(first, remote_unit=0), self.state)

    def answer(self, member: str) -> NetworkProviderAppData:
        return published_answer(_relation(self.state, self.relation_id(member)))


@dataclasses.dataclass
class Dirs:
    """What a unit's containers keep across runs, as a pod's filesystem does (Mounts)."""

    root: Path

    def __call__(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class KnfUnit:
    """One unit of a KNF charm (the test's subject: a CDN charm), on its networks and, for
    the CDN, on `origin`."""

    def __init__(
        self,
        app: App,
        number: int,
        module: ModuleType,
        juju_version: str,
        cluster: FakeCluster,
        networks: dict[str, int],  # network application -> relation id
        origins: dict[str, int],  # application across `origin` -> relation id
        root: Path,
    ):
        self.app = app
        self.name = f"{app.name}/{number}"
        self.number = number
        self.module = module
        self.cluster = cluster
        self.ctx = testing.Context(
            charm_class(module), app_name=app.name, unit_id=number, juju_version=juju_version
        )
        self.dirs = Dirs(root / self.name.replace("/", "-"))
        self.network_ids = networks
        self.origin_ids = origins
        relations: set[testing.RelationBase] = {
            testing.Relation("networks", id=rid, remote_app_name=net) for net, rid in networks.items()
        }
        relations |= {testing.Relation("origin", id=rid, remote_app_name=o) for o, rid in origins.items()}
        if app.charm.peers:
            relations |= {testing.PeerRelation(p) for p in app.charm.peers}
        self.state = testing.State(
            leader=number == 0,
            model=testing.Model(name=MODEL),
            config=dict(app.given),
            relations=relations,
            containers=self._containers(),
            storages={testing.Storage("content")} if app.charm.name in (CONTENT_SERVER, CACHE) else set(),
        )
        self.applied: list[knf.InterfacePlan] | None = None

    def _containers(self) -> set[testing.Container]:
        charm = self.app.charm.name
        if charm == ROUTER:
            etc = testing.Mount(location="/etc/cdn-router", source=self.dirs("etc-cdn-router"))
            return {testing.Container("router", can_connect=True, execs={NFT_OK}, mounts={"etc": etc})}
        if charm in (CONTENT_SERVER, CACHE):
            content = testing.Mount(location=self.module.CONTENT_DIR, source=self.dirs("content"))
            nginx = testing.Container(
                "nginx",
                can_connect=True,
                mounts={
                    "content": content,
                    "etc": testing.Mount(location="/etc/nginx", source=self.dirs("etc")),
                },
                execs={NGINX_OK},
            )
            status = testing.Mount(location=self.module.STATUS_DIR, source=self.dirs("status"))
            jobs = testing.Container("jobs", can_connect=True, mounts={"content": content, "status": status})
            return {nginx, jobs}
        return set()

    @contextmanager
    def _running(self) -> Iterator[None]:
        with self.cluster.installed():
            if hasattr(self.module, "_write_manifest"):
                # The content server's manifest job, run for real on this unit's content
                # (ops.testing's Exec writes no files), as its unit tests stand in for it.
                content = self.dirs("content")
                with mock.patch.object(self.module, "_write_manifest", lambda _c, _argv: _manifest(content)):
                    yield
            else:
                yield

    def run(self, event: str) -> None:
        with self._running():
            self.state = self.ctx.run(getattr(self.ctx.on, event)(), self.state)

    def hear(self, answers: dict[str, NetworkProviderAppData], origins: dict[str, dict[str, str]]) -> None:
        """The networks' answers (as network_relation builds them from what the network charm
        published) and the origin's app data, keeping what this unit wrote."""
        relations: list[testing.RelationBase] = []
        for net, rid in self.network_ids.items():
            answer = answers.get(net)
            if answer is None:
                continue
            relations.append(
                network_relation(
                    answer.network.name,
                    answer.network.cidr,
                    mtu=answer.network.mtu,
                    network_type=answer.network.type,
                    assignments=answer.assignments,
                    rejections=answer.rejections,
                    routes=[(r.prefix, r.via) for r in answer.routes],
                    remote_app_name=net,
                    id=rid,
                    local_unit_data=dict(self.state.get_relation(rid).local_unit_data),
                )
            )
        for other, data in origins.items():
            rid = self.origin_ids[other]
            relations.append(dataclasses.replace(_relation(self.state, rid), remote_app_data=dict(data)))
        self.state = _replace_relations(self.state, relations)

    def request(self, net: str) -> NetworkRequirerUnitData | None:
        rel = _relation(self.state, self.network_ids[net])
        if not rel.local_unit_data or not ({"address", "address-from"} & set(rel.local_unit_data)):
            return None
        return published_request(rel)

    def container_file(self, container: str, path: str) -> str:
        fs = self.state.get_container(container).get_filesystem(self.ctx)
        return (fs / path.lstrip("/")).read_text()


def _manifest(content: Path) -> None:
    manifests.write_manifest(content)


class Lab:
    """The bundle's charms, run through the chain (see the module's docstring)."""

    def __init__(self, bundle: Bundle, juju_version: str, root: Path, modules: dict[str, ModuleType]):
        self.bundle = bundle
        knf_apps = [a for a in bundle.apps.values() if joined_networks(bundle, a)]
        self.joined = {a.name: joined_networks(bundle, a) for a in knf_apps}
        self.networks = {
            a.name: NetworkApp(
                a,
                modules[a.charm.name],
                juju_version,
                [k for k in self.joined if a.name in self.joined[k]],
            )
            for a in bundle.by_charm(NETWORK_CHARM)
        }
        # One origin relation per (server, cache) pair, one id on both sides (ops.testing's).
        origin_ids: dict[tuple[str, str], int] = {}
        for (a, ea), (b, eb) in bundle.relations:
            if "origin" in (ea, eb) and a in bundle.apps and b in bundle.apps:
                origin_ids[(a, b)] = origin_ids[(b, a)] = testing.Relation("origin").id
        self.clusters = {
            a.name: FakeCluster(a.name, containers=("charm", *CONTAINERS.get(a.charm.name, ())))
            for a in knf_apps
        }
        # Content servers first: a cache hears its origin's URLs as they were published.
        order = {CONTENT_SERVER: 0, ROUTER: 1, CACHE: 2}
        self.units: dict[str, KnfUnit] = {}
        for a in sorted(knf_apps, key=lambda a: order.get(a.charm.name, 1)):
            for number in range(a.scale):
                unit = KnfUnit(
                    a,
                    number,
                    modules[a.charm.name],
                    juju_version,
                    self.clusters[a.name],
                    {n: self.networks[n].relation_id(a.name) for n in self.joined[a.name]},
                    {o: rid for (one, o), rid in origin_ids.items() if one == a.name},
                    root,
                )
                self.units[unit.name] = unit

    def run(self) -> Lab:
        for net in self.networks.values():
            net.configure()
        for unit in self.units.values():
            unit.hear(self._answers(unit), {})
            unit.run("config_changed")  # publishes the requests; the leader patches the template
        for name, net in self.networks.items():
            requests: dict[str, dict[int, Any]] = {}
            for member in net.relations:
                requests[member] = {
                    u.number: u.request(name) for u in self.units.values() if u.app.name == member
                }
            net.hear(requests)
        for cluster in self.clusters.values():
            cluster.restart_pods()  # the pods come back with their L2S-M interfaces
        for unit in self.units.values():
            unit.hear(self._answers(unit), self._origins(unit))
            before = len(unit.cluster.applied)
            unit.run("update_status")
            if len(unit.cluster.applied) > before:
                unit.applied = unit.cluster.applied[-1]
        return self

    def _answers(self, unit: KnfUnit) -> dict[str, NetworkProviderAppData]:
        return {n: self.networks[n].answer(unit.app.name) for n in unit.network_ids}

    def _origins(self, unit: KnfUnit) -> dict[str, dict[str, str]]:
        """What the other side's leader published on each origin relation of this unit."""
        result = {}
        for other, rid in unit.origin_ids.items():
            leader = self.units.get(f"{other}/0")
            if leader is not None:
                result[other] = dict(leader.state.get_relation(rid).local_app_data)
        return result


@contextmanager
def fakes(root: Path) -> Iterator[FakeKube]:
    """The network charms' cluster (the L2S-M CRDs) and the router pod's ip_forward (on)."""
    kube = FakeKube(default_namespace=MODEL)
    for crd in custom_resource_definitions("l2sm-controller", "l2sm"):
        kube.add(crd)
    forward = root / "ip_forward"
    forward.write_text("1\n")
    with (
        mock.patch("l2sm_knf.kube.Client", lambda **_: kube),
        mock.patch("l2sm_knf.l2sm_network.IP_FORWARD_PATH", str(forward)),
    ):
        yield kube
