"""The `l2sm_controller` interface (l2sm_charmlib.l2sm_controller): what its schema takes
and refuses, and the testing helpers that build its relation data."""

import re

import ops
import pydantic
import pytest
from hypothesis import given, settings
from ops import testing

from l2sm_charmlib import l2sm_controller
from l2sm_charmlib.l2sm_controller import (
    SAMPLE_APP_DATA,
    ControllerProviderAppData,
    controller_relation,
    published_controller_data,
)
from l2sm_charmlib.reconcile import Blocked, Waiting
from l2sm_knf.databag import InvalidDatabag
from l2sm_testing.bad_input import loose_booleans
from l2sm_testing.samples import CONTROLLER_APP_DATA

GOOD = CONTROLLER_APP_DATA


def test_round_trip_by_alias():
    data = ControllerProviderAppData(**GOOD)
    assert data.cluster_ip == "10.152.183.20"
    assert data.model_dump(by_alias=True) == GOOD


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("cluster-ip", "not-an-ip", "cluster-ip"),
        ("openflow-port", 70000, "openflow-port"),
        ("rest-url", "10.0.0.1:8181", "not an http"),
        ("credentials-secret", "karaf:karaf", "Juju secret id"),
        ("host", "Bad_Host.svc", "DNS-1123"),
        ("namespace", "L2SM", "DNS-1123"),
    ],
)
def test_bad_fields_refused(field, value, fragment):
    with pytest.raises(pydantic.ValidationError, match=fragment):
        ControllerProviderAppData(**(GOOD | {field: value}))


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("cluster-ip", "0.0.0.0", "not a usable host address"),
        ("cluster-ip", "127.0.0.1", "127.0.0.0/8"),
        ("cluster-ip", "224.0.0.1", "224.0.0.0/4"),
        ("cluster-ip", "10.152.183.020", "not an IPv4 address"),
        ("ready", "yes", "not a boolean"),
        ("ready", 1, "not a boolean"),
        ("ready", "", "not a boolean"),
        ("rest-url", "http://", "with a host"),
        ("rest-url", "ftp://10.0.0.1", "with a host"),
        ("rest-url", "http://karaf:karaf@10.0.0.1:8181", "credentials"),
        ("rest-url", "http://10.0.0.1:99999", "bad host or port"),
        ("rest-url", "http://10.0.0.1:8181\n", "not an http(s) URL"),
        ("openflow-port", "6633", "valid integer"),
        ("openflow-port", True, "valid integer"),
        ("openflow-port", 0, "greater than or equal to 1"),
        ("credentials-secret", "secret:", "Juju secret id"),
        ("credentials-secret", "secret:a b", "Juju secret id"),
        ("host", "a." * 130 + "b", "at most 253"),
        ("host", "l2sm.svc.", "DNS-1123"),
    ],
)
def test_controller_data_refusals(field, value, fragment):
    with pytest.raises(pydantic.ValidationError, match=re.escape(fragment)) as err:
        ControllerProviderAppData(**(GOOD | {field: value}))
    assert err.value.errors()[0]["loc"] == (field,)


def test_ready_words():
    assert ControllerProviderAppData(**(GOOD | {"ready": "false"})).ready is False
    assert ControllerProviderAppData(**(GOOD | {"ready": "true"})).ready is True


@settings(max_examples=40, deadline=None)
@given(loose_booleans())
def test_no_loose_boolean_is_ready(value):
    with pytest.raises(pydantic.ValidationError):
        ControllerProviderAppData(**(GOOD | {"ready": value}))


# -- issue 9: credentials on Juju 2.9, in a Kubernetes Secret --------------------------------


def test_credentials_in_a_kubernetes_secret_are_a_reference():
    data = ControllerProviderAppData(
        **(GOOD | {"credentials-secret": "kubernetes:l2sm/l2sm-controller-secrets"})
    )
    assert data.kubernetes_secret == ("l2sm", "l2sm-controller-secrets")
    assert ControllerProviderAppData(**GOOD).kubernetes_secret is None
    dotted = ControllerProviderAppData(**(GOOD | {"credentials-secret": "kubernetes:l2sm/creds.v1"}))
    assert dotted.kubernetes_secret == ("l2sm", "creds.v1")  # a Secret name is a DNS subdomain


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("kubernetes:", "no '/' between namespace and name"),
        ("kubernetes:l2sm", "no '/' between namespace and name"),
        ("kubernetes:/creds", "DNS-1123"),
        ("kubernetes:L2SM/creds", "DNS-1123"),
        ("kubernetes:l2sm/", "DNS-1123"),
        ("kubernetes:l2sm/a_b", "DNS-1123"),
        ("kubernetes:l2sm/creds\n", "DNS-1123"),
        ("kubernetes:l2sm/" + "a" * 254, "at most 253"),
        ("k8s:l2sm/creds", "Juju secret id (secret:...) or a Kubernetes Secret reference"),
        ("username: karaf", "never the credentials"),
    ],
)
def test_bad_kubernetes_secret_references_refused(value, fragment):
    with pytest.raises(pydantic.ValidationError, match=re.escape(fragment)) as err:
        ControllerProviderAppData(**(GOOD | {"credentials-secret": value}))
    assert err.value.errors()[0]["loc"] == ("credentials-secret",)


def test_a_juju_secret_uri_with_its_model_uuid_is_a_reference():
    uri = "secret://0ba1b2c3-d4e5-4f60-8a1b-2c3d4e5f6a7b/cs0qk4fmp25c77ek0av0"
    data = ControllerProviderAppData(**(GOOD | {"credentials-secret": uri}))
    assert data.credentials_secret == uri and data.kubernetes_secret is None
    for bad in ("secret://not-a-uuid/cs0qk4fmp25c77ek0av0", f"{uri}\n", "secret:///cs0qk4fmp25c77ek0av0"):
        with pytest.raises(pydantic.ValidationError, match="Juju secret id"):
            ControllerProviderAppData(**(GOOD | {"credentials-secret": bad}))


# -- the testing helpers -----------------------------------------------------------------------


class ControllerCharm(ops.CharmBase):
    """The provider's side as l2sm-controller uses it."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._publish)

    def _publish(self, _: ops.EventBase) -> None:
        for relation in self.model.relations["controller"]:
            l2sm_controller.publish(relation, self.app, ControllerProviderAppData(**SAMPLE_APP_DATA))


class SwitchCharm(ops.CharmBase):
    """The requirer's side as the switch and network charms use it."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._read)

    def _read(self, _: ops.EventBase) -> None:
        try:
            data = l2sm_controller.controller_data(self, "controller")
        except (Blocked, Waiting) as exc:
            status = ops.BlockedStatus if isinstance(exc, Blocked) else ops.WaitingStatus
            self.unit.status = status(str(exc))
            return
        self.unit.status = ops.ActiveStatus(f"controller at {data.host}")


CONTROLLER_META = {"name": "l2sm-controller", "provides": {"controller": {"interface": "l2sm_controller"}}}
SWITCH_META = {"name": "l2sm-switch", "requires": {"controller": {"interface": "l2sm_controller"}}}


def test_the_sample_is_the_shared_one():
    assert dict(SAMPLE_APP_DATA) == CONTROLLER_APP_DATA
    with pytest.raises(TypeError):
        SAMPLE_APP_DATA["ready"] = False  # type: ignore[index]


def test_controller_relation_holds_what_publish_writes():
    ctx = testing.Context(ControllerCharm, meta=CONTROLLER_META)
    relation = testing.Relation("controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True, relations={relation}))
    written = out.get_relation(relation.id)
    built = controller_relation()
    assert built.remote_app_data == written.local_app_data
    assert (built.endpoint, built.remote_app_name) == ("controller", "l2sm-controller")
    assert published_controller_data(written) == ControllerProviderAppData(**SAMPLE_APP_DATA)


@pytest.mark.parametrize("juju_version", ["2.9.43", "3.6.4"])
@pytest.mark.parametrize(
    ("data", "status"),
    [
        (None, testing.ActiveStatus("controller at l2sm-controller-sdn.l2sm.svc.cluster.local")),
        (
            {**SAMPLE_APP_DATA, "ready": False},
            testing.WaitingStatus("waiting for the controller to be ready"),
        ),
        (
            ControllerProviderAppData(**(SAMPLE_APP_DATA | {"credentials-secret": "kubernetes:l2sm/creds"})),
            testing.ActiveStatus("controller at l2sm-controller-sdn.l2sm.svc.cluster.local"),
        ),
    ],
)
def test_controller_relation_reads_as_the_requirer_reads_it(juju_version, data, status):
    ctx = testing.Context(SwitchCharm, meta=SWITCH_META, juju_version=juju_version)
    out = ctx.run(ctx.on.config_changed(), testing.State(relations={controller_relation(data)}))
    assert out.unit_status == status


def test_controller_relation_passes_relation_arguments():
    built = controller_relation(endpoint="sdn", remote_app_name="ctl", id=5)
    assert (built.endpoint, built.remote_app_name, built.id) == ("sdn", "ctl", 5)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("rest-url", "x", "not an http(s) URL"),
        ("credentials-secret", "karaf:karaf", "never the credentials"),
        ("openflow-port", "6633", "valid integer"),
    ],
)
def test_controller_relation_refuses_what_no_controller_sends(field, value, fragment):
    with pytest.raises(pydantic.ValidationError, match=re.escape(fragment)):
        controller_relation(SAMPLE_APP_DATA | {field: value})


def test_published_controller_data_is_read_strictly():
    good = controller_relation().remote_app_data
    for bad, fragment in (
        (good | {"password": '"karaf"'}, "keys outside the schema: password"),
        (good | {"ready": "true "}, "not written as canonical_json"),
        ({k: v for k, v in good.items() if k != "host"}, "field 'host': Field required"),
    ):
        relation = testing.Relation("controller", local_app_data=bad)
        with pytest.raises(InvalidDatabag, match=re.escape(fragment)):
            published_controller_data(relation)
