"""The CRDs against the upstream L2S-M API types, and objects written from those types."""

import copy

import kubernetes_validate
import pytest

from l2sm_controlplane.crds import (
    CRD_KINDS,
    crd_name,
    crd_schema,
    custom_resource_definitions,
    validate_custom_object,
)
from l2sm_controlplane.objects import action_network
from l2sm_core.manifests import L2SM_API_VERSION, SPEC_HASH, common_labels

K8S_VERSION = "1.31"

# Names, plurals and printer columns as upstream's api/v1 types declare them.
UPSTREAM = {
    "L2Network": (
        "l2networks",
        [
            ("AVAILABILITY", "string", ".status.internalConnectivity"),
            ("CONNECTED_PODS", "integer", ".status.connectedPodCount"),
            ("AGE", "date", ".metadata.creationTimestamp"),
        ],
    ),
    "Overlay": ("overlays", []),
    "NetworkEdgeDevice": (
        "networkedgedevices",
        [("STATUS", "string", ".status.availability"), ("AGE", "date", ".metadata.creationTimestamp")],
    ),
    "QuarantinePodRequest": ("quarantinepodrequests", []),
}

PROVIDER = {"name": "l2sm-controller", "domain": ["l2sm-controller-service.l2sm-system.svc"]}

SWITCH_TEMPLATE = {
    "metadata": {"labels": {"team": "net"}},
    "spec": {
        "hostNetwork": True,
        "containers": [
            {
                "name": "l2sm-switch",
                "image": "alexdecb/talpa:1.3.8",
                "imagePullPolicy": "Always",
                "args": ["sps-init", "--node_name=$(NODENAME)"],
                "env": [{"name": "NODENAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    },
}


def _obj(kind, spec, name="example", **extra):
    return {
        "apiVersion": L2SM_API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": "l2sm"},
        "spec": spec,
        **extra,
    }


VALID = {
    "l2network-pure-l2": _obj("L2Network", {"type": "vnet"}),
    "l2network-cidr-provider": _obj(
        "L2Network",
        {
            "type": "ext-vnet",
            "networkCIDR": "10.101.0.0/16",
            "podAddressRange": "10.101.2.0/24",
            "provider": {"name": "idco", "domain": ["192.168.10.5"], "sdnPort": "30808"},
            "config": "{}",
        },
    ),
    "l2network-ids-defaults": _obj(
        "L2Network",
        {
            "type": "vnet",
            "ids": {
                "node": "worker-1",
                "profile": "suricata",
                "ignorePorts": [22, 443],
                "customRuleSources": [{"name": "local", "configMapRef": {"name": "rules"}}],
            },
        },
    ),
    # internalConnectivity is required but defaulted, as the manager relies on.
    "l2network-status": _obj(
        "L2Network",
        {"type": "vlink"},
        status={
            "connectedPodCount": 2,
            "assignedIPs": {"10.101.2.1": "pod-a"},
            "lastAssignedIP": "10.101.2.1",
        },
    ),
    "overlay": _obj(
        "Overlay",
        {
            "provider": PROVIDER,
            "topology": {
                "nodes": ["node-a", "node-b", "node-c"],
                "links": [
                    {"endpointA": "node-a", "endpointB": "node-b"},
                    {"endpointA": "node-b", "endpointB": "node-c"},
                ],
            },
            "interfaceNumber": 10,
            "switchTemplate": SWITCH_TEMPLATE,
        },
    ),
    "overlay-monitor": _obj(
        "Overlay",
        {
            "provider": PROVIDER,
            "topology": {"nodes": ["node-a"]},
            "monitor": {
                "metrics": [
                    {"name": "rtt", "interval": 5},
                    {"name": "loss", "scriptSource": {"name": "scripts", "key": "loss.sh"}},
                ],
                "exportMetric": {"method": "codeco-swm", "config": {"nt_namespace": "he-codeco-netma"}},
            },
        },
        status={"linkMetrics": [{"sourceNode": "node-a", "targetNode": "node-b", "status": "Up"}]},
    ),
    "network-edge-device": _obj(
        "NetworkEdgeDevice",
        {
            "provider": {"name": "idco", "domain": ["192.168.10.5"]},
            "nodeConfig": {"nodeName": "node-a", "ipAddress": "10.0.0.11"},
            "neighbors": [{"node": "cluster-b", "domain": "10.0.1.11"}],
            "switchTemplate": SWITCH_TEMPLATE,
        },
        status={"availability": "Available", "openflowId": "of:0000000000000001"},
    ),
    "quarantine": _obj(
        "QuarantinePodRequest",
        {
            "selector": {
                "podLabelSelector": {"matchLabels": {"app": "suspect"}},
                "l2NetworkSelector": {
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]
                },
            },
            "targetL2Network": "quarantine",
        },
        status={
            "observedGeneration": 1,
            "matchedPodCount": 2,
            "movedPodCount": 2,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "PodsMoved",
                    "message": "2 pods moved",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ],
        },
    ),
}


def _edited(name, edit):
    obj = copy.deepcopy(VALID[name])
    edit(obj)
    return obj


INVALID = {
    "unknown-type": (
        _edited("l2network-pure-l2", lambda o: o["spec"].update(type="vxlan")),
        r"\$\.spec\.type",
    ),
    "missing-type": (
        _edited("l2network-cidr-provider", lambda o: o["spec"].pop("type")),
        r"'type' is a required",
    ),
    "status-enum": (
        _edited("l2network-status", lambda o: o["status"].update(internalConnectivity="Online")),
        r"\$\.status\.internalConnectivity",
    ),
    "unknown-field": (
        _edited("l2network-pure-l2", lambda o: o["spec"].update(networkCidr="10.0.0.0/8")),
        r"\$\.spec: .*networkCidr",
    ),
    "overlay-no-provider": (
        _edited("overlay", lambda o: o["spec"].pop("provider")),
        r"'provider' is a required",
    ),
    "provider-no-domain": (
        _edited("overlay", lambda o: o["spec"]["provider"].pop("domain")),
        r"\$\.spec\.provider: 'domain' is a required",
    ),
    "interface-number-string": (
        _edited("overlay", lambda o: o["spec"].update(interfaceNumber="10")),
        r"\$\.spec\.interfaceNumber",
    ),
    "container-without-name": (
        _edited("overlay", lambda o: o["spec"]["switchTemplate"]["spec"]["containers"][0].pop("name")),
        r"\$\.spec\.switchTemplate\.spec\.containers\[0\]: 'name' is a required",
    ),
    "topology-without-nodes": (
        _edited("overlay", lambda o: o["spec"]["topology"].pop("nodes")),
        r"'nodes' is a required",
    ),
    "ned-no-provider": (_edited("network-edge-device", lambda o: o["spec"].pop("provider")), r"'provider'"),
    "ned-neighbor-no-domain": (
        _edited("network-edge-device", lambda o: o["spec"]["neighbors"][0].pop("domain")),
        r"\$\.spec\.neighbors\[0\]: 'domain'",
    ),
    "quarantine-empty-target": (
        _edited("quarantine", lambda o: o["spec"].update(targetL2Network="")),
        r"\$\.spec\.targetL2Network",
    ),
    "quarantine-no-spec": (_edited("quarantine", lambda o: o.pop("spec")), r"'spec' is a required"),
    "quarantine-no-pod-selector": (
        _edited("quarantine", lambda o: o["spec"]["selector"].pop("podLabelSelector")),
        r"'podLabelSelector' is a required",
    ),
    "quarantine-bad-condition": (
        _edited("quarantine", lambda o: o["status"]["conditions"][0].update(status="Maybe")),
        r"\$\.status\.conditions\[0\]\.status",
    ),
    "wrong-kind": (_edited("l2network-pure-l2", lambda o: o.update(kind="Network")), r"\$\.kind"),
    "wrong-api-version": (
        _edited("l2network-pure-l2", lambda o: o.update(apiVersion="l2sm.k8s.local/v1")),
        r"\$\.apiVersion",
    ),
}


@pytest.fixture(scope="module")
def crds():
    return custom_resource_definitions("l2sm-controller", "l2sm")


def test_crds_are_valid_kubernetes_objects(crds):
    assert len(crds) == len(CRD_KINDS)
    for crd in crds:
        kubernetes_validate.validate(crd, K8S_VERSION, strict=True)


def test_names_and_layout_follow_upstream(crds):
    assert [crd["spec"]["names"]["kind"] for crd in crds] == list(CRD_KINDS)
    for crd in crds:
        kind = crd["spec"]["names"]["kind"]
        plural, columns = UPSTREAM[kind]
        assert crd_name(kind) == f"{plural}.l2sm.l2sm.k8s.local"
        assert crd["metadata"]["name"] == crd_name(kind)
        assert crd["metadata"]["labels"] == common_labels("l2sm-controller", "l2sm")
        assert SPEC_HASH in crd["metadata"]["annotations"]
        spec = crd["spec"]
        assert spec["group"] == "l2sm.l2sm.k8s.local"
        assert spec["scope"] == "Namespaced"
        assert spec["names"] == {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": kind.lower(),
        }
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        assert version["subresources"] == {"status": {}}
        got = [(c["name"], c["type"], c["jsonPath"]) for c in version.get("additionalPrinterColumns", [])]
        assert got == columns


def test_crd_name_refuses_other_kinds():
    with pytest.raises(ValueError, match="not an L2S-M kind"):
        crd_name("Pod")


def _check_structural(node, path):
    """Every node typed, unless it keeps unknown fields; properties and additionalProperties exclusive."""
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    assert "type" in node or preserve, f"{path}: no type"
    assert not ("properties" in node and "additionalProperties" in node), f"{path}: properties and map"
    if node.get("type") == "object":
        assert "properties" in node or "additionalProperties" in node or preserve or path == "$.metadata", (
            f"{path}: an object that would be pruned empty"
        )
    for name in node.get("required", []):
        assert name in node.get("properties", {}), f"{path}: required {name} is not a property"
    if node.get("x-kubernetes-list-type") == "map":
        for key in node["x-kubernetes-list-map-keys"]:
            assert key in node["items"].get("required", []), f"{path}: list-map key {key} not required"
    for name, prop in node.get("properties", {}).items():
        _check_structural(prop, f"{path}.{name}")
    if "items" in node:
        _check_structural(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        _check_structural(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", CRD_KINDS)
def test_schemas_are_structural(kind, crds):
    schema = crd_schema(kind)
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    _check_structural(schema, "$")
    (crd,) = [crd for crd in crds if crd["spec"]["names"]["kind"] == kind]
    assert crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] == schema


def test_schema_details_from_the_go_types():
    l2network = crd_schema("L2Network")["properties"]
    spec = l2network["spec"]
    assert spec["required"] == ["type"]
    # A plain string enum: upstream's extra preserve-unknown-fields here is a generator quirk.
    assert spec["properties"]["type"] == {"type": "string", "enum": ["ext-vnet", "vnet", "vlink"]}
    provider = spec["properties"]["provider"]
    assert provider["required"] == ["domain", "name"]
    assert {k: v.get("default") for k, v in provider["properties"].items()} == {
        "name": None,
        "domain": None,
        "sdnPort": "30808",
        "dnsPort": "30053",
        "dnsGrpcPort": "30818",
        "ofPort": "6633",
    }
    status = l2network["status"]
    assert status["required"] == ["internalConnectivity"]
    assert status["properties"]["internalConnectivity"]["default"] == "Unavailable"
    assert status["properties"]["internalConnectivity"]["enum"] == ["Available", "Unavailable", "Unknown"]
    assert status["properties"]["connectedPodCount"]["default"] == 0

    overlay = crd_schema("Overlay")["properties"]["spec"]
    assert overlay["required"] == ["provider"]
    assert overlay["properties"]["interfaceNumber"] == {
        "type": "integer",
        "default": 10,
        "description": overlay["properties"]["interfaceNumber"]["description"],
    }
    template = overlay["properties"]["switchTemplate"]["properties"]
    # Kept, unlike upstream, so switch labels reach the ReplicaSet.
    assert template["metadata"]["x-kubernetes-preserve-unknown-fields"] is True
    for field in ("containers", "initContainers", "volumes"):
        listed = template["spec"]["properties"][field]
        assert listed["x-kubernetes-list-type"] == "map"
        assert listed["x-kubernetes-list-map-keys"] == ["name"]
    assert template["spec"]["required"] == ["containers"]

    ned_status = crd_schema("NetworkEdgeDevice")["properties"]["status"]
    assert ned_status["required"] == ["availability"]
    assert ned_status["properties"]["availability"]["default"] == "Unavailable"

    quarantine = crd_schema("QuarantinePodRequest")
    assert quarantine["required"] == ["spec"]
    conditions = quarantine["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    selector = quarantine["properties"]["spec"]["properties"]["selector"]["properties"]["podLabelSelector"]
    assert selector["x-kubernetes-map-type"] == "atomic"


def test_crd_schema_returns_a_fresh_copy():
    crd_schema("L2Network")["properties"].clear()
    assert "spec" in crd_schema("L2Network")["properties"]


@pytest.mark.parametrize("name", VALID)
def test_valid_examples(name):
    before = copy.deepcopy(VALID[name])
    validate_custom_object(VALID[name])
    assert VALID[name] == before  # defaults are applied to a copy


@pytest.mark.parametrize("name", INVALID)
def test_invalid_examples(name):
    obj, message = INVALID[name]
    with pytest.raises(ValueError, match=message):
        validate_custom_object(obj)


def test_rejects_non_objects():
    with pytest.raises(ValueError, match="expected an object"):
        validate_custom_object([])  # type: ignore[arg-type]


@pytest.mark.parametrize("cidr", [None, "10.101.0.0/16"])
def test_action_network_matches_the_schema(cidr):
    network = action_network("l2sm-controller", "l2sm", "net-a", cidr)
    validate_custom_object(network)
    assert ("networkCIDR" in network["spec"]) == (cidr is not None)
