"""The secret scanner finds a planted leak in every place and every form it claims to cover,
and nothing where nothing leaked."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import secrets
import textwrap

import ops
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import ConfigMap
from ops import testing

from l2sm_knf.l2sm_network import FakeCluster
from l2sm_testing import secret_scan
from l2sm_testing.fake_kube import FakeKube
from l2sm_testing.secret_scan import Allowed, Capture, SecretValue, Sweep

logger = logging.getLogger("leaky")
APP = "leaky"
VAULT = "vault"
META = {
    "name": APP,
    "containers": {"work": {}},
    "requires": {"db": {"interface": "db"}},
    "peers": {"peers": {"interface": "leaky-peers"}},
}
ACTIONS = {"leak": {"params": {"place": {"type": "string"}, "form": {"type": "string"}}}}
WORK_MOUNT = "/srv/data"


def _key_and_cert() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaky")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def encoded(value: str, form: str) -> str | bytes:
    """value as a leak would carry it, inside other text."""
    if form == "plain":
        return f"config:\n  key: {value}\n"
    if form.startswith("base64"):
        # Leading bytes move the value to each alignment inside the encoded blob.
        shift = int(form[-1])
        blob = b"x" * shift + value.encode() + b"trailer"
        encode = base64.urlsafe_b64encode if form.startswith("base64url") else base64.b64encode
        return "blob=" + encode(blob).decode()
    if form == "json":
        return json.dumps({"outer": {"inner": value}})
    if form == "pem-rewrapped":
        body = "".join(value.strip().splitlines()[1:-1])
        return (
            "-----BEGIN PRIVATE KEY-----\n"
            + "\n".join(textwrap.wrap(body, 15))
            + "\n-----END PRIVATE KEY-----\n"
        )
    if form == "pem-one-line":
        return "annotation: " + value.strip().splitlines()[2]
    if form == "der":
        body = "".join(value.strip().splitlines()[1:-1])
        return b"\x00\x01header" + base64.b64decode(body) + b"footer"
    raise AssertionError(form)


class Leaky(ops.CharmBase):
    """Writes the vault's private key to the place an action names, in the form it names."""

    _stored = ops.StoredState()
    kube: FakeKube
    cluster: FakeCluster

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(note="")
        framework.observe(self.on.leak_action, self._on_leak)

    def _on_leak(self, event: ops.ActionEvent) -> None:
        value = self.model.get_secret(label=VAULT).get_content()["private-key"]
        place = event.params["place"]
        text = encoded(value, event.params["form"])
        as_str = text if isinstance(text, str) else text.decode("latin-1")
        container = self.unit.get_container("work")
        relation = self.model.get_relation("db")
        peers = self.model.get_relation("peers")
        assert relation is not None and peers is not None
        if place == "relation-app":
            relation.data[self.app]["note"] = as_str
        elif place == "relation-unit":
            relation.data[self.unit]["note"] = as_str
        elif place == "peer-app":
            peers.data[self.app]["note"] = as_str
        elif place == "stored":
            self._stored.note = as_str
        elif place == "unit-status":
            self.unit.status = ops.ActiveStatus(as_str)
        elif place == "app-status":
            self.app.status = ops.BlockedStatus(as_str)
        elif place == "workload-version":
            self.unit.set_workload_version(as_str)
        elif place == "log":
            logger.info("configured with %s", as_str)
        elif place == "action-result":
            event.set_results({"summary": as_str})
        elif place == "action-log":
            event.log(as_str)
        elif place == "action-failure":
            event.fail(f"could not: {as_str}")
        elif place == "file":
            container.push("/etc/leaky/app.conf", text, make_dirs=True)
        elif place == "mounted-file":
            container.push(f"{WORK_MOUNT}/app.conf", text, make_dirs=True)
        elif place == "file-removed":
            container.push("/etc/leaky/once.conf", text, make_dirs=True)
            container.remove_path("/etc/leaky/once.conf")
        elif place == "file-name":
            # A body line holds '/': the name spans directories, its path still reads whole.
            container.push(f"/etc/leaky/{value.splitlines()[1]}", "x", make_dirs=True)
        elif place == "layer-env":
            layer: ops.pebble.LayerDict = {
                "services": {"app": {"override": "replace", "command": "app", "environment": {"KEY": as_str}}}
            }
            container.add_layer("app", layer, combine=True)
        elif place == "layer-command":
            container.add_layer(
                "app",
                {"services": {"app": {"override": "replace", "command": f"app --key '{as_str}'"}}},
                combine=True,
            )
        elif place == "exec":
            container.exec(["tool", "--key", as_str]).wait()
        elif place == "exec-env":
            container.exec(["tool"], environment={"KEY": as_str}).wait()
        elif place == "kube-apply":
            self.kube.apply(
                ConfigMap(metadata=ObjectMeta(name="conf", namespace="m"), data={"note": as_str}),
                field_manager=APP,
            )
        elif place == "kube-patch":
            self.kube.patch(
                ConfigMap, "existing", {"data": {"note": as_str}}, namespace="m", field_manager=APP
            )
        elif place == "cluster-patch":
            patch = {
                "spec": {
                    "template": {"metadata": {"annotations": {"note": as_str}}, "spec": {"containers": []}}
                }
            }
            self.cluster.apply_patch(StatefulSet, APP, None, patch)
        elif place == "other-secret":
            self.app.add_secret({"copy": as_str}, label="other")
        elif place == "secret-description":
            self.app.add_secret({"note": "nothing here"}, label="other", description=as_str[:200])
        elif place != "none":
            raise AssertionError(place)


@pytest.fixture
def keys():
    return _key_and_cert()


@pytest.fixture
def world(keys):
    kube = FakeKube(default_namespace="m")
    kube.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "existing", "namespace": "m"}})
    Leaky.kube = kube
    Leaky.cluster = FakeCluster(APP)
    return kube


def _state(keys, tmp_path) -> testing.State:
    key, cert = keys
    vault = testing.Secret(tracked_content={"private-key": key, "cert": cert}, label=VAULT, owner="app")
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    work = testing.Container(
        "work",
        can_connect=True,
        mounts={"data": testing.Mount(location=WORK_MOUNT, source=data)},
        execs={testing.Exec(["tool"], return_code=0)},
    )
    return testing.State(
        leader=True,
        secrets={vault},
        containers={work},
        relations={testing.Relation("db", remote_app_name="store"), testing.PeerRelation("peers")},
    )


def _leak(keys, tmp_path, caplog, place, form="plain"):
    caplog.set_level(logging.DEBUG)
    ctx = testing.Context(Leaky, meta=META, actions=ACTIONS, juju_version="3.6.4")
    capture = Capture()
    with capture.installed():
        sweep = Sweep(ctx, capture)
        sweep.run(ctx.on.action("leak", params={"place": place, "form": form}), _state(keys, tmp_path))
    found = secret_scan.scan(
        sweep.secret_values(Leaky.kube.objects.values()),
        sweep.places(
            secret_scan.log_places(caplog.records), secret_scan.kube_places(Leaky.kube.objects.values())
        ),
    )
    # The vault itself holds it: that is where it belongs.
    return secret_scan.leaks(found, [Allowed("juju-secret vault *", "the secret itself")]), found


# Each place the scanner claims, and where it reports the leak.
PLACES = {
    "relation-app": "relation db#* local_app_data.note",
    "relation-unit": "relation db#* local_unit_data.note",
    "peer-app": "relation peers#* local_app_data.note",
    "stored": "stored-state *.note",
    "unit-status": "unit status",
    "app-status": "app status",
    "workload-version": "workload version",
    "log": "log[*] leaky INFO",
    "action-result": "action results.summary",
    "action-log": "action logs[0]",
    "action-failure": "action failure [0]",
    "file": "container work file /etc/leaky/app.conf",
    "mounted-file": "container work file /srv/data/app.conf",
    "file-removed": "container work pushed /etc/leaky/once.conf",
    "file-name": "container work path",
    "layer-env": "container work plan.services.app.environment.KEY",
    "layer-command": "container work layer app.services.app.command",
    "exec": "container work exec.command[2]",
    "exec-env": "container work exec.environment.KEY",
    "kube-apply": "kube apply ConfigMap m/conf.data.note",
    "kube-patch": "kube patch ConfigMap m/existing.data.note",
    "cluster-patch": "kube patch StatefulSet /leaky.spec.template.metadata.annotations.note",
    "other-secret": "juju-secret other content.copy",
    "secret-description": "juju-secret other description",
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_leak_in_each_place_is_found_there(keys, world, tmp_path, caplog, place):
    found, _ = _leak(keys, tmp_path, caplog, place)
    assert found, f"a leak into {place} went unseen"
    assert any(secret_scan.matches(PLACES[place], f.where) for f in found), [str(f) for f in found]
    # A copy holding the key is a secret of its own too: found where it went.
    assert {f.secret.origin for f in found} == {"vault/private-key"} | (
        {"other/copy"} if place == "other-secret" else set()
    )
    assert all(
        f.step == "1: leak_action leak" for f in found if not f.where.startswith(("log[", "kube object"))
    )


FORMS = {
    "plain": "plain",
    "base64-0": "base64 (offset *)",
    "base64-1": "base64 (offset *)",
    "base64-2": "base64 (offset *)",
    "base64url-1": "base64* (offset *)",
    "json": "JSON-escaped",
    "pem-rewrapped": "PEM body, re-wrapped",
    "pem-one-line": "PEM body line *",
    "der": "DER",
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_leak_in_each_form_is_found(keys, world, tmp_path, caplog, form):
    found, _ = _leak(keys, tmp_path, caplog, "file", form)
    [finding] = [f for f in found if f.where == "container work file /etc/leaky/app.conf"]
    assert secret_scan.matches(FORMS[form], finding.form), finding.form


def test_a_charm_that_leaks_nothing_has_it_only_where_it_belongs(keys, world, tmp_path, caplog):
    leaked, found = _leak(keys, tmp_path, caplog, "none")
    assert leaked == []
    # The control: the scan did see the secret, in the vault and nowhere else, and not the cert.
    assert {f.where for f in found} == {
        "juju-secret vault content.private-key",
        "juju-secret vault tracked.private-key",
    }


def test_allowed_names_one_place_for_one_secret():
    key = SecretValue("webhook-tls", "key", "k" * 40)
    ca_key = SecretValue("webhook-tls", "ca-key", "c" * 40)
    places = [secret_scan.Place("container manager file /certs/tls.key", "k" * 40 + "c" * 40)]
    found = secret_scan.scan([key, ca_key], places)
    assert {f.secret.key for f in found} == {"key", "ca-key"}
    rule = Allowed("container manager file /certs/tls.key", "the server's key", secrets="webhook-tls/key")
    assert [f.secret.key for f in secret_scan.leaks(found, [rule])] == ["ca-key"]
    per_key = Allowed("container manager file /certs/tls.{key}", "its own file")
    assert [f.secret.key for f in secret_scan.leaks(found, [per_key])] == ["ca-key"]


def test_which_entries_are_secret(keys):
    key, cert = keys
    content = {
        "ca-key": key,
        "key": "x" * 30,
        "cert": cert,
        "ca-cert": cert,
        "password": "hunter22",
        "username": "u",
    }
    assert {v.key for v in secret_scan.from_content("tls", content)} == {"ca-key", "key", "password"}
    # A private key is secret whatever its key says.
    assert [v.key for v in secret_scan.from_content("x", {"blob": key})] == ["blob"]


def test_kubernetes_secrets_are_read_from_data_and_string_data(keys):
    key, _ = keys
    obj = {
        "kind": "Secret",
        "metadata": {"name": "app-secrets"},
        "data": {
            "webhook-tls.ca-key": base64.b64encode(key.encode()).decode(),
            "tls.crt": base64.b64encode(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----").decode(),
            "not-base64.password": "%%%",
        },
        "stringData": {"password": "s3cret-value"},
    }
    values = secret_scan.kubernetes_secret_values([obj, {"kind": "ConfigMap", "data": {"password": "x"}}])
    assert {(v.label, v.key, v.value) for v in values} == {
        ("webhook-tls", "ca-key", key),
        ("app-secrets", "password", "s3cret-value"),
    }


def test_values_too_short_to_scan_for_are_refused():
    with pytest.raises(ValueError, match="too few to scan for"):
        secret_scan.unique([SecretValue("x", "password", "abc")])


def test_random_secrets_are_not_found_in_unrelated_text(keys):
    _, cert = keys
    values = [SecretValue("x", "password", secrets.token_urlsafe(16)) for _ in range(20)]
    unrelated = [
        secret_scan.Place("cert", cert),
        secret_scan.Place("b64", base64.b64encode(cert.encode()).decode()),
    ]
    assert secret_scan.scan(values, unrelated) == []


@given(
    prefix=st.binary(max_size=5),
    value=st.text(min_size=secret_scan.MIN_VALUE, max_size=40).filter(
        lambda v: len(v.strip().encode()) >= secret_scan.MIN_VALUE
    ),
    suffix=st.binary(max_size=5),
    urlsafe=st.booleans(),
)
def test_base64_of_a_value_inside_anything_is_found(prefix, value, suffix, urlsafe):
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = encode(prefix + value.encode() + suffix).decode()
    assert secret_scan.scan([SecretValue("x", "password", value)], [secret_scan.Place("p", text)])


def test_secret_shaped_places_are_found_without_knowing_the_value(keys, world, tmp_path, caplog):
    _leak(keys, tmp_path, caplog, "none")
    key, _ = keys
    places = [
        secret_scan.Place("file /a", "nothing to see"),
        secret_scan.Place("file /b", "x\n" + key),
        *secret_scan.flatten("relation db local_app_data", {"admin-password": "", "address": "10.0.0.1/24"}),
    ]
    assert [p.where for p in secret_scan.secret_shaped(places)] == [
        "file /b",
        "relation db local_app_data (key)",
    ]


def test_allowed_can_name_the_step():
    value = SecretValue("creds", "password", "p" * 20)
    found = secret_scan.scan(
        [value], [secret_scan.Place("kube apply Secret a/b.data.x", "p" * 20, "juju 3.6.4 step 2")]
    )
    assert secret_scan.leaks(found, [Allowed("kube apply Secret *", "2.9 only", step="juju 2.9*")]) == found
    assert secret_scan.leaks(found, [Allowed("kube apply Secret *", "any Juju")]) == []
