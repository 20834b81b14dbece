"""Pebble layers for the two workloads, started as their images start them upstream."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request

from ops import pebble

from l2sm_controlplane.objects import REST_PORT

# Upstream hard-codes these in the operator; the REST port stays on ClusterIP for that reason.
REST_USERNAME = "karaf"
REST_PASSWORD = "karaf"

ONOS_HOME = "/root/onos"
# The image's entrypoint script starts ONOS and then posts this archive; the charm posts it
# itself so it can see and report each step.
VNETS_ARCHIVE = f"{ONOS_HOME}/vnets-app-1.0.oar"
WEBHOOK_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"
MANAGER_HEALTH_PORT = 8081
MANAGER_READYZ_URL = f"http://127.0.0.1:{MANAGER_HEALTH_PORT}/readyz"

CONTROLLER_SERVICE = "onos"
CONTROLLER_CHECK = "vnets-api"
MANAGER_SERVICE = "manager"
MANAGER_CHECK = "manager-ready"


def _basic_auth() -> str:
    return "Basic " + base64.b64encode(f"{REST_USERNAME}:{REST_PASSWORD}".encode()).decode()


def controller_layer() -> pebble.LayerDict:
    return {
        "summary": "L2S-M SDN controller",
        "services": {
            CONTROLLER_SERVICE: {
                "override": "replace",
                "summary": "ONOS 2.7 (the vnets app is installed by the charm)",
                # From ONOS's home, as the image starts it. Not with `working-dir`: the Pebble
                # of Juju 2.9 (1.1) has no such service field and refuses the whole layer.
                # One command for every Juju, so a Juju upgrade never restarts ONOS.
                "command": f"/bin/sh -c 'cd {ONOS_HOME} && exec bin/onos-service server'",
                "startup": "enabled",
            }
        },
        "checks": {
            # No level: Juju turns a failing `ready` check into pod un-readiness, and a vnets
            # hiccup must not take OpenFlow off the switches. The charm reads it (status,
            # check events on Juju 3.6+, update-status everywhere); a restart on failure
            # would keep killing ONOS while it starts.
            CONTROLLER_CHECK: {
                "override": "replace",
                "period": "10s",
                "timeout": "3s",
                "threshold": 3,
                "http": {
                    "url": f"http://localhost:{REST_PORT}/onos/vnets/api/status",
                    "headers": {"Authorization": _basic_auth()},
                },
            }
        },
    }


def manager_layer(namespace: str) -> pebble.LayerDict:
    return {
        "summary": "L2S-M operator",
        "services": {
            MANAGER_SERVICE: {
                "override": "replace",
                "summary": "L2S-M controller-manager",
                # Metrics off: upstream serves them behind token reviews we do not set up.
                "command": (
                    f"/manager --leader-elect --health-probe-bind-address=:{MANAGER_HEALTH_PORT} "
                    "--metrics-bind-address=0"
                ),
                "startup": "enabled",
                "environment": {
                    # Same pod: the REST API is on localhost, no DNS or Service needed.
                    "CONTROLLER_IP": "127.0.0.1",
                    "CONTROLLER_PORT": str(REST_PORT),
                    # NADs live in this namespace; naming it lets KNF pods of other models use them.
                    "SWITCHES_NAMESPACE": namespace,
                },
            }
        },
        "checks": {
            # Ready level: the pod's readiness follows the manager, so the webhook Service has
            # no endpoint while it is down (admissions fail at once, saying so). The SDN
            # Service publishes not-ready addresses: OpenFlow and REST stay up meanwhile.
            MANAGER_CHECK: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "threshold": 3,
                "http": {"url": f"http://localhost:{MANAGER_HEALTH_PORT}/readyz"},
            }
        },
    }


def plan_differs(plan: pebble.Plan, layer: pebble.LayerDict) -> bool:
    """True when the running plan lacks any service or check of the layer, as the layer has it."""
    current = plan.to_dict()
    for section in ("services", "checks"):
        wanted = layer.get(section) or {}
        have = current.get(section) or {}
        for name, spec in wanted.items():
            got = dict(have.get(name) or {})
            if {k: v for k, v in got.items() if k != "override"} != {
                k: v for k, v in dict(spec).items() if k != "override"
            }:
                return True
    return False


def http_ok(url: str, wait: float = 0.0, interval: float = 1.0) -> bool:
    """True once url answers 200, trying for up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() + interval > deadline:
            return False
        time.sleep(interval)
