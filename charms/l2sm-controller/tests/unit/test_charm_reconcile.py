"""Install, start-up gates, status and the only-on-change rule."""

import pytest
import workload
from conftest import APP, NAMESPACE, OAR, controller_container, make_state, manager_container, stored_secret
from ops import pebble, testing

from l2sm_controlplane.crds import CRD_KINDS, crd_name


def _run(ctx, state, event=None):
    container = next(c for c in state.containers if c.name == "controller")
    return ctx.run(event or ctx.on.pebble_ready(container), state)


def test_first_start_installs_everything(ctx, kube, controller, oar_dir):
    out = _run(ctx, make_state(oar_dir))

    for kind in CRD_KINDS:
        assert kube.find("CustomResourceDefinition", crd_name(kind)) is not None
    assert kube.find("Service", f"{APP}-sdn", NAMESPACE)["spec"]["selector"] == {
        "statefulset.kubernetes.io/pod-name": f"{APP}-0"
    }
    assert kube.find("Service", f"{APP}-webhook", NAMESPACE) is not None
    webhook = kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods")
    assert webhook["webhooks"][0]["clientConfig"]["service"]["namespace"] == NAMESPACE
    assert kube.field_managers == {APP}
    # The vnets app came from the controller image and went in through ONOS's app API.
    assert controller.installed_archives == [OAR]

    stored = stored_secret(ctx, kube, out, "webhook-tls")
    assert "BEGIN CERTIFICATE" in stored["cert"]
    manager = out.get_container("manager")
    fs = manager.get_filesystem(ctx)
    pushed = (fs / workload.WEBHOOK_CERT_DIR.lstrip("/") / "tls.crt").read_text()
    assert pushed == stored["cert"]
    # From ONOS's home without Pebble's `working-dir`, which Juju 2.9's Pebble refuses.
    service = out.get_container("controller").plan.services["onos"]
    assert service.command == "/bin/sh -c 'cd /root/onos && exec bin/onos-service server'"
    assert "working-dir" not in service.to_dict()
    env = manager.plan.services["manager"].environment
    assert env["SWITCHES_NAMESPACE"] == NAMESPACE
    assert out.unit_status == testing.ActiveStatus("controller ready, 0 switches connected")
    assert out.app_status == out.unit_status


def test_second_run_changes_nothing(ctx, kube, controller, oar_dir):
    out = _run(ctx, make_state(oar_dir))
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert kube.writes == writes
    assert again.unit_status.name == "active"


def test_switch_count_in_status(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    controller.devices = {
        "of:e5e40be8c6b4bf54": True,
        "of:cc4d87e0ca1f6b49": True,
        "of:17f5f571e2353768": False,
    }
    out = _run(ctx, make_state(oar_dir))
    assert out.unit_status == testing.ActiveStatus("controller ready, 2 switches connected")


def test_webhook_waits_for_the_manager(ctx, kube, controller, oar_dir):
    controller.manager_ready = False
    state = make_state(oar_dir, containers={controller_container(oar_dir), manager_container(ready=False)})
    out = _run(ctx, state)
    assert out.unit_status == testing.WaitingStatus("manager starting")
    # A webhook without its server would block every L2S-M pod: not installed yet.
    assert kube.kinds("MutatingWebhookConfiguration") == []
    assert (
        out.get_container("manager").get_filesystem(ctx) / "tmp/k8s-webhook-server/serving-certs/tls.key"
    ).exists()


def test_manager_check_never_passed_is_not_ready(ctx, kube, controller, oar_dir):
    controller.manager_ready = False  # and /readyz does not answer either
    state = make_state(oar_dir, containers={controller_container(oar_dir), manager_container(successes=0)})
    out = _run(ctx, state)
    assert out.unit_status == testing.WaitingStatus("manager starting")


def test_manager_waits_for_controller(ctx, kube, controller, oar_dir):
    controller.onos_up = False
    out = _run(
        ctx, make_state(oar_dir, containers={controller_container(oar_dir), manager_container(ready=None)})
    )
    assert out.unit_status == testing.WaitingStatus("controller starting")
    assert out.get_container("controller").plan.services  # ONOS started
    assert not out.get_container("manager").plan.services  # it would exit without the REST API


def test_vnets_starting(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    controller.ready = False
    out = _run(
        ctx, make_state(oar_dir, containers={controller_container(oar_dir), manager_container(ready=None)})
    )
    assert out.unit_status == testing.WaitingStatus("vnets app starting")
    assert not out.get_container("manager").plan.services


def test_unreachable_controller(ctx, kube, controller, oar_dir, monkeypatch):
    import charm

    monkeypatch.setattr(charm, "LOCAL_REST_URL", "http://127.0.0.1:9")
    out = _run(ctx, make_state(oar_dir))
    assert out.unit_status == testing.WaitingStatus("controller starting")


def test_containers_not_ready(ctx, kube, controller, oar_dir):
    state = make_state(
        oar_dir, containers={controller_container(oar_dir, connect=False), manager_container()}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus("waiting for the controller container")
    state = make_state(oar_dir, containers={controller_container(oar_dir), manager_container(connect=False)})
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus("manager starting")


def test_missing_archive_blocks(ctx, kube, controller, oar_dir):
    state = make_state(
        oar_dir, containers={controller_container(oar_dir, with_archive=False), manager_container(ready=None)}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert controller.installed_archives == []
    assert out.unit_status == testing.BlockedStatus(
        f"{workload.VNETS_ARCHIVE} not in controller-image: attach an l2sm-controller image"
    )
    assert not out.get_container("manager").plan.services


def test_forbidden_blocks_and_applies_nothing(ctx, kube, controller, oar_dir):
    kube.forbidden = True
    out = _run(ctx, make_state(oar_dir))
    assert out.unit_status == testing.BlockedStatus(f"deploy with --trust (juju trust {APP} --scope=cluster)")
    assert kube.writes == []


def test_multus_missing_blocks(ctx, kube, controller, oar_dir):
    kube.objects.clear()
    out = _run(ctx, make_state(oar_dir))
    assert out.unit_status.name == "blocked"
    assert "Multus" in out.unit_status.message
    assert "network-attachment-definitions.k8s.cni.cncf.io" in out.unit_status.message
    assert kube.writes == []


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"webhook-certificate-days": 3}, "option 'webhook-certificate-days'"),
        ({"webhook-renew-days": 0}, "option 'webhook-renew-days'"),
        ({"webhook-certificate-days": 20, "webhook-renew-days": 30}, "webhook-renew-days (30) must be less"),
    ],
)
def test_bad_config_blocks_and_changes_nothing(ctx, kube, controller, oar_dir, config, fragment):
    out = ctx.run(ctx.on.config_changed(), make_state(oar_dir, config=config))
    assert out.unit_status.name == "blocked"
    assert fragment in out.unit_status.message
    assert kube.writes == []
    assert not out.secrets


def test_extra_unit_does_nothing(ctx, kube, controller, oar_dir):
    out = _run(ctx, make_state(oar_dir, leader=False))
    assert out.unit_status.name == "blocked"
    assert "not clustered" in out.unit_status.message
    assert kube.writes == []
    assert not out.get_container("controller").plan.services
    # A unit that lost leadership stops the manager it was running.
    assert out.get_container("manager").service_statuses["manager"] == pebble.ServiceStatus.INACTIVE


def test_leader_change_moves_services(juju_version, kube, controller, oar_dir):
    import charm
    from conftest import JujuContext

    for unit_id in (0, 1):
        ctx = JujuContext(charm.L2smControllerCharm, unit_id=unit_id, juju_version=juju_version)
        ctx.run(ctx.on.leader_elected(), make_state(oar_dir))
        selector = kube.find("Service", f"{APP}-sdn", NAMESPACE)["spec"]["selector"]
        # Traffic follows the leader: the only unit whose workloads run.
        assert selector == {"statefulset.kubernetes.io/pod-name": f"{APP}-{unit_id}"}


@pytest.mark.parametrize(
    "event_name",
    [
        "manager_pebble_ready",
        "config_changed",
        "upgrade_charm",
        "leader_elected",
        "update_status",
        "check_failed",
    ],
)
def test_every_event_of_interest_reconciles(ctx, kube, controller, oar_dir, event_name):
    from ops import pebble

    state = make_state(oar_dir)
    manager = next(c for c in state.containers if c.name == "manager")
    if event_name == "manager_pebble_ready":
        event = ctx.on.pebble_ready(manager)
    elif event_name == "check_failed":
        # A check that failed once (below threshold) while the controller otherwise runs.
        info = testing.CheckInfo(workload.CONTROLLER_CHECK, level=pebble.CheckLevel.UNSET, failures=1)
        running = testing.Container(
            "controller",
            can_connect=True,
            mounts=controller_container(oar_dir).mounts,
            layers={"controller": pebble.Layer(workload.controller_layer())},
            check_infos={info},
        )
        state = make_state(oar_dir, containers={running, manager})
        # Juju 2.9 has no check events: its next update-status meets the same state.
        event = ctx.on.pebble_check_failed(running, info) if ctx.has_check_events else ctx.on.update_status()
    else:
        event = getattr(ctx.on, event_name)()
    out = ctx.run(event, state)
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is not None
    assert out.unit_status.name == "active"


def test_controller_error_mid_reconcile_is_logged(ctx, kube, controller, oar_dir, caplog):
    controller.install_fails = True
    out = ctx.run(ctx.on.update_status(), make_state(oar_dir))
    assert "controller stopped answering" in caplog.text
    assert controller.installed_archives == []
    assert out.unit_status == testing.WaitingStatus("vnets app starting")
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is None


def test_installed_but_inactive_app_is_activated(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    controller.vnets_active = False
    out = _run(ctx, make_state(oar_dir))
    assert controller.vnets_active
    assert controller.installed_archives == []
    assert out.unit_status.name == "active"


def test_manager_started_in_this_hook_is_waited_for(ctx, kube, controller, oar_dir):
    # A fresh manager container: the charm adds the layer, then waits on /readyz.
    state = make_state(oar_dir, containers={controller_container(oar_dir), manager_container(ready=None)})
    out = _run(ctx, state)
    service = out.get_container("manager").plan.services["manager"]
    assert service.command.startswith("/manager --leader-elect --health-probe-bind-address=:8081")
    assert service.environment == {
        "CONTROLLER_IP": "127.0.0.1",
        "CONTROLLER_PORT": "8181",
        "SWITCHES_NAMESPACE": NAMESPACE,
    }
    assert "manager-ready" in out.get_container("manager").plan.checks
    # Ready within the hook: webhook, status and relation data need no update-status.
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is not None
    assert out.unit_status.name == "active"


def test_image_that_does_not_start_blocks(ctx, kube, controller, oar_dir, monkeypatch):
    import ops

    def broken_replan(self):
        raise ops.pebble.ChangeError(
            "cannot start service: exec: /root/onos/bin/onos-service: no such file", None
        )

    monkeypatch.setattr(ops.Container, "replan", broken_replan)
    state = make_state(oar_dir, containers={controller_container(oar_dir), manager_container(ready=None)})
    out = _run(ctx, state)
    assert out.unit_status == testing.BlockedStatus(
        "controller-image does not start (cannot start service: exec: /root/onos/bin/onos-service: "
        "no such file): attach an l2sm-controller image"
    )
    assert not out.get_container("manager").plan.services
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is None


def test_another_l2sm_install_blocks(ctx, kube, controller, oar_dir):
    kube.add(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "l2sm-mutating-webhook-configuration"},
            "webhooks": [
                {
                    "name": "mpod.kb.io",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "objectSelector": {"matchLabels": {"l2sm": "true"}},
                    "clientConfig": {"service": {"name": "l2sm-webhook-service", "namespace": "l2sm-system"}},
                }
            ],
        }
    )
    out = _run(ctx, make_state(oar_dir))
    assert out.unit_status == testing.BlockedStatus(
        "another L2S-M is installed (webhook l2sm-mutating-webhook-configuration): "
        "remove it or this application"
    )
    assert kube.writes == []


def test_an_unrelated_pod_webhook_is_no_reason_to_stop(ctx, kube, controller, oar_dir):
    kube.add(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "opentelemetry-operator-mutation"},
            "webhooks": [
                {
                    "name": "mpod.kb.io",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "clientConfig": {
                        "service": {"name": "otel", "namespace": "otel", "path": "/mutate-v1-pod"}
                    },
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["pods"],
                        }
                    ],
                }
            ],
        }
    )
    out = _run(ctx, make_state(oar_dir))
    assert out.unit_status.name == "active"
