"""CustomResourceDefinitions of the L2S-M API (`l2sm.l2sm.k8s.local/v1`), written from its Go types.

This is our own encoding of upstream's `api/v1` types, field for field: the same names, types,
enums, defaults and required fields, so the upstream manager and our charms read the same
objects. Where we depart from upstream's generated CRDs, a comment says why.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from l2sm_core.manifests import L2SM_API_VERSION, L2SM_GROUP, L2SM_VERSION, common_labels, with_spec_hash

Schema = dict[str, Any]

CRD_KINDS = ("L2Network", "Overlay", "NetworkEdgeDevice", "QuarantinePodRequest")

_PLURALS = {
    "L2Network": "l2networks",
    "Overlay": "overlays",
    "NetworkEdgeDevice": "networkedgedevices",
    "QuarantinePodRequest": "quarantinepodrequests",
}

_AGE_COLUMN = {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_PRINTER_COLUMNS: dict[str, list[dict[str, str]]] = {
    "L2Network": [
        {
            "name": "AVAILABILITY",
            "type": "string",
            "jsonPath": ".status.internalConnectivity",
            "description": "Whether the network exists in the SDN controller",
        },
        {
            "name": "CONNECTED_PODS",
            "type": "integer",
            "jsonPath": ".status.connectedPodCount",
            "description": "Pods attached to the network",
        },
        _AGE_COLUMN,
    ],
    "NetworkEdgeDevice": [
        {
            "name": "STATUS",
            "type": "string",
            "jsonPath": ".status.availability",
            "description": "Whether the edge switch is connected",
        },
        _AGE_COLUMN,
    ],
}

CONNECTIVITY_STATES = ("Available", "Unavailable", "Unknown")
NETWORK_TYPES = ("ext-vnet", "vnet", "vlink")


def crd_name(kind: str) -> str:
    return f"{plural(kind)}.{L2SM_GROUP}"


def plural(kind: str) -> str:
    try:
        return _PLURALS[kind]
    except KeyError:
        raise ValueError(f"not an L2S-M kind: {kind!r} (expected one of {', '.join(CRD_KINDS)})") from None


# Small constructors. Each call returns fresh dicts, so no two CRDs share (and can mutate) a node.


def _string(description: str | None = None, **extra: Any) -> Schema:
    return _described({"type": "string", **extra}, description)


def _integer(fmt: str | None = None, description: str | None = None, **extra: Any) -> Schema:
    node: Schema = {"type": "integer", **extra}
    if fmt:
        node["format"] = fmt
    return _described(node, description)


def _boolean(**extra: Any) -> Schema:
    return {"type": "boolean", **extra}


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def _string_map() -> Schema:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def _object(
    properties: dict[str, Schema], required: Iterable[str] = (), description: str | None = None, **extra: Any
) -> Schema:
    node: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        node["required"] = sorted(required)
    return _described(node, description)


def _described(node: Schema, description: str | None) -> Schema:
    if description:
        node["description"] = description
    return node


# Types shared by several kinds.


def _provider(description: str) -> Schema:
    return _object(
        {
            "name": _string(),
            "domain": _array(_string(), description="Addresses or names where the SDN controller is reached"),
            "sdnPort": _string(default="30808"),
            "dnsPort": _string(default="30053"),
            "dnsGrpcPort": _string(default="30818"),
            "ofPort": _string(default="6633"),
        },
        required=("name", "domain"),
        description=description,
    )


def _connectivity(default: str | None = None) -> Schema:
    node = _string(enum=list(CONNECTIVITY_STATES))
    if default is not None:
        node["default"] = default
    return node


def _neighbor() -> Schema:
    return _object(
        {"node": _string(), "domain": _string(), "lpmIp": _string()},
        required=("node", "domain"),
    )


def _link_status() -> Schema:
    return _object(
        {
            "sourceNode": _string(),
            "targetNode": _string(),
            "status": _string(),
            "metrics": _array(_object({"name": _string(), "value": _string()}, required=("name", "value"))),
        },
        required=("sourceNode", "targetNode", "status"),
    )


def _monitor() -> Schema:
    metric = _object(
        {
            "name": _string(),
            "interval": _integer(description="Minutes between measurements; unset means continuous"),
            "scriptSource": _object({"name": _string(), "key": _string()}, required=("name", "key")),
        },
        required=("name",),
    )
    export = _object(
        {
            "method": _string(default="default"),
            "serviceAccount": _string(default="default"),
            "config": _string_map(),
        }
    )
    return _object(
        {
            "metrics": _array(metric),
            "spreadFactor": _string(default="0.2"),
            "exportMetric": export,
            "networkCIDR": _string(),
            "ipCIDR": _string(),
        },
        required=("metrics",),
    )


def _named_core_list(what: str) -> Schema:
    # corev1.Container and corev1.Volume: we do not re-encode the core Pod schema here, the
    # apiserver checks the switch pod when the manager creates it. Only the list-map key is
    # typed and required, which the list-map semantics need.
    item: Schema = {
        "type": "object",
        "description": f"A core/v1 {what}",
        "properties": {"name": _string()},
        "required": ["name"],
        "x-kubernetes-preserve-unknown-fields": True,
    }
    return _array(item, **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})


def _switch_template() -> Schema:
    # Upstream's CRD leaves this metadata a bare object, so the apiserver prunes the labels and
    # annotations the manager would copy onto the switch ReplicaSet. We keep them on purpose.
    metadata: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    spec = _object(
        {
            "volumes": _named_core_list("Volume"),
            "initContainers": _named_core_list("Container"),
            "containers": _named_core_list("Container"),
            "hostNetwork": _boolean(),
        },
        required=("containers",),
    )
    return _object({"metadata": metadata, "spec": spec}, description="The switch pod to run on each node")


def _label_selector() -> Schema:
    requirement = _object(
        {"key": _string(), "operator": _string(), "values": _array(_string())},
        required=("key", "operator"),
    )
    return _object(
        {"matchLabels": _string_map(), "matchExpressions": _array(requirement)},
        **{"x-kubernetes-map-type": "atomic"},
    )


def _condition() -> Schema:
    # metav1.Condition, with the validation its Go markers declare.
    return _object(
        {
            "type": _string(
                maxLength=316,
                pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            ),
            "status": _string(enum=["True", "False", "Unknown"]),
            "observedGeneration": _integer("int64", minimum=0),
            "lastTransitionTime": _string(format="date-time"),
            "reason": _string(
                minLength=1, maxLength=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
            ),
            "message": _string(maxLength=32768),
        },
        required=("type", "status", "lastTransitionTime", "reason", "message"),
    )


def _root(spec: Schema, status: Schema, required: Iterable[str] = ()) -> Schema:
    return _object(
        {
            "apiVersion": _string(),
            "kind": _string(),
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        required=required,
    )


# One schema per kind.


def _l2network() -> Schema:
    ids_rule_source = _object(
        {
            "name": _string(),
            "url": _string(),
            "inline": _string(),
            "configMapRef": _object({"name": _string()}, **{"x-kubernetes-map-type": "atomic"}),
        },
        required=("name",),
    )
    ids = _object(
        {
            "enabled": _boolean(default=True),
            "homeNetCidr": _array(_string()),
            "useEmergingThreatsOpen": _boolean(default=True),
            "customRuleSources": _array(ids_rule_source),
            "ignorePorts": _array(_integer("int32")),
            "node": _string(),
            "profile": _string(),
            "namespace": _string(),
        },
        # Required as in the Go types; the defaults fill in two of them.
        required=("enabled", "node", "profile", "useEmergingThreatsOpen"),
        description="Intrusion detection for the network",
    )
    spec = _object(
        {
            # Upstream's generator also marks this string preserve-unknown-fields; a plain
            # string enum is what the type means.
            "type": _string(enum=list(NETWORK_TYPES)),
            "config": _string(),
            "provider": _provider("External SDN controller, for inter-cluster networks"),
            "networkCIDR": _string(description="Network prefix of the pod addresses, e.g. 10.101.0.0/16"),
            "podAddressRange": _string(description="Pool inside networkCIDR to assign pod addresses from"),
            "ids": ids,
        },
        required=("type",),
    )
    status = _object(
        {
            "connectedPodCount": _integer(default=0),
            "lastAssignedIP": _string(),
            "assignedIPs": _string_map(),
            "internalConnectivity": _connectivity(default="Unavailable"),
            "providerConnectivity": _connectivity(),
        },
        required=("internalConnectivity",),
    )
    return _root(spec, status)


def _overlay() -> Schema:
    topology = _object(
        {
            "nodes": _array(_string(), description="Nodes that each run a switch"),
            "links": _array(
                _object({"endpointA": _string(), "endpointB": _string()}, required=("endpointA", "endpointB"))
            ),
        },
        required=("nodes",),
    )
    spec = _object(
        {
            "provider": _provider("SDN controller of the overlay's switches"),
            "topology": topology,
            "switchTemplate": _switch_template(),
            "interfaceNumber": _integer(default=10, description="Pod-facing interfaces per switch"),
            "monitor": _monitor(),
        },
        required=("provider",),
    )
    status = _object({"linkMetrics": _array(_link_status())})
    return _root(spec, status)


def _network_edge_device() -> Schema:
    spec = _object(
        {
            "provider": _provider("SDN controller of the edge switch"),
            "nodeConfig": _object(
                {"nodeName": _string(), "ipAddress": _string()}, required=("nodeName", "ipAddress")
            ),
            "neighbors": _array(_neighbor()),
            "switchTemplate": _switch_template(),
            "monitor": _monitor(),
        },
        required=("provider",),
    )
    status = _object(
        {
            "availability": _connectivity(default="Unavailable"),
            "connectedNeighbors": _array(_neighbor()),
            "openflowId": _string(),
            "linkMetrics": _array(_link_status()),
        },
        required=("availability",),
    )
    return _root(spec, status)


def _quarantine_pod_request() -> Schema:
    spec = _object(
        {
            "selector": _object(
                {"podLabelSelector": _label_selector(), "l2NetworkSelector": _label_selector()},
                required=("podLabelSelector", "l2NetworkSelector"),
            ),
            "targetL2Network": _string(minLength=1, description="L2Network the selected pods move to"),
        },
        required=("selector", "targetL2Network"),
    )
    status = _object(
        {
            "observedGeneration": _integer("int64"),
            "sourceL2NetworkName": _string(),
            "targetL2NetworkName": _string(),
            "matchedPodCount": _integer("int32"),
            "movedPodCount": _integer("int32"),
            "conditions": _array(
                _condition(), **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
            ),
        }
    )
    return _root(spec, status, required=("spec",))


_SCHEMAS = {
    "L2Network": _l2network,
    "Overlay": _overlay,
    "NetworkEdgeDevice": _network_edge_device,
    "QuarantinePodRequest": _quarantine_pod_request,
}


def crd_schema(kind: str) -> Schema:
    """The openAPIV3Schema of a kind; a fresh copy on every call."""
    plural(kind)
    return _SCHEMAS[kind]()


def custom_resource_definition(kind: str, app: str, model: str) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": L2SM_VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": crd_schema(kind)},
        "subresources": {"status": {}},
    }
    if kind in _PRINTER_COLUMNS:
        version["additionalPrinterColumns"] = copy.deepcopy(_PRINTER_COLUMNS[kind])
    return with_spec_hash(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": crd_name(kind), "labels": common_labels(app, model)},
            "spec": {
                "group": L2SM_GROUP,
                "names": {
                    "kind": kind,
                    "listKind": f"{kind}List",
                    "plural": plural(kind),
                    "singular": kind.lower(),
                },
                "scope": "Namespaced",
                "versions": [version],
            },
        }
    )


def custom_resource_definitions(app: str, model: str) -> list[dict[str, Any]]:
    return [custom_resource_definition(kind, app, model) for kind in CRD_KINDS]


# Checking custom objects before they are sent.


def validate_custom_object(obj: dict[str, Any]) -> None:
    """Check an L2S-M object as the apiserver would: defaults first, then the schema.

    Unknown fields are errors, as with `kubectl --validate=strict`; the apiserver would
    otherwise drop them without a word. Raises ValueError naming the JSON path of the error.
    """
    # Test-time dependency only: charms do not ship jsonschema.
    import jsonschema

    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    if obj.get("apiVersion") != L2SM_API_VERSION:
        raise ValueError(f"$.apiVersion: expected {L2SM_API_VERSION!r}, got {obj.get('apiVersion')!r}")
    kind = obj.get("kind")
    if kind not in CRD_KINDS:
        raise ValueError(f"$.kind: expected one of {', '.join(CRD_KINDS)}, got {kind!r}")

    schema = crd_schema(kind)
    value = copy.deepcopy(obj)
    _apply_defaults(schema, value)
    validator = jsonschema.Draft202012Validator(_json_schema(schema))
    errors = sorted(validator.iter_errors(value), key=lambda error: error.json_path)
    if errors:
        name = value.get("metadata", {}).get("name", "<unnamed>")
        raise ValueError(f"{kind} {name}: {errors[0].json_path}: {errors[0].message}")


def _apply_defaults(schema: Schema, value: Any) -> None:
    # The apiserver drops nulls from non-nullable fields, then fills in defaults, at every depth.
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties", {})
        for key, sub in properties.items():
            if key in value and value[key] is None and not sub.get("nullable"):
                del value[key]
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in properties:
                    _apply_defaults(extra, item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _apply_defaults(schema["items"], item)


def _json_schema(node: Schema) -> Schema:
    """Plain JSON Schema from a CRD schema: no x-kubernetes-* keys, closed objects."""
    out: Schema = {}
    for key, sub in node.items():
        if key.startswith("x-kubernetes-") or key == "description":
            continue
        if key == "properties":
            out[key] = {name: _json_schema(prop) for name, prop in sub.items()}
        elif key in ("items", "additionalProperties") and isinstance(sub, dict):
            out[key] = _json_schema(sub)
        else:
            out[key] = copy.deepcopy(sub)
    keeps_unknown = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if "properties" in node and not keeps_unknown:
        out["additionalProperties"] = False
    return out
