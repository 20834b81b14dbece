"""Webhook certificates: issued, stored (a Juju secret, or the charm's Kubernetes Secret on
Juju 2.9), renewed before expiry."""

import datetime

import tls
import workload
from conftest import APP, NAMESPACE, make_state, stored_secret, with_stored_secret
from cryptography import x509

NOW = datetime.datetime.now(datetime.timezone.utc)
NAMES = [f"{APP}-webhook.{NAMESPACE}.svc", f"{APP}-webhook.{NAMESPACE}.svc.cluster.local"]


def test_issue_signs_with_the_ca():
    bundle = tls.issue(APP, NAMES, 365, NOW)
    cert = x509.load_pem_x509_certificate(bundle.cert.encode())
    ca = x509.load_pem_x509_certificate(bundle.ca_cert.encode())
    cert.verify_directly_issued_by(ca)
    assert sorted(bundle.dns_names()) == sorted(NAMES)
    assert bundle.needs_renewal(NAMES, 30, NOW) is None
    assert "expires in" in bundle.needs_renewal(NAMES, 30, NOW + datetime.timedelta(days=340))
    assert bundle.needs_renewal(["other.svc"], 30, NOW) == "the webhook Service name changed"
    assert bundle.needs_renewal(NAMES, 30, NOW + datetime.timedelta(days=3640)) is not None


def test_reissue_keeps_the_ca_unless_it_expires():
    first = tls.issue(APP, NAMES, 365, NOW)
    second = tls.issue(APP, NAMES, 365, NOW, ca=first)
    assert second.ca_cert == first.ca_cert and second.cert != first.cert
    assert second.ca_bundle() == first.ca_cert
    late = NOW + datetime.timedelta(days=3500)
    third = tls.issue(APP, NAMES, 365, late, ca=first)
    assert third.ca_cert != first.ca_cert
    # Across a CA rotation the webhook trusts both, so no pod is refused in between.
    assert third.ca_bundle() == third.ca_cert + first.ca_cert
    again = tls.WebhookTLS.from_secret(third.as_secret())
    assert again == third


def test_charm_renews_before_expiry(ctx, kube, controller, oar_dir):
    old = tls.issue(APP, NAMES, 30, NOW - datetime.timedelta(days=25))  # 5 days left
    state = with_stored_secret(ctx, kube, make_state(oar_dir), "webhook-tls", old.as_secret())
    out = ctx.run(ctx.on.update_status(), state)

    renewed = tls.WebhookTLS.from_secret(stored_secret(ctx, kube, out, "webhook-tls"))
    assert renewed.cert != old.cert
    assert renewed.ca_cert == old.ca_cert  # the webhook's caBundle stays valid
    assert renewed.not_after() > NOW + datetime.timedelta(days=300)
    fs = out.get_container("manager").get_filesystem(ctx)
    assert (fs / workload.WEBHOOK_CERT_DIR.lstrip("/") / "tls.crt").read_text() == renewed.cert


def test_charm_keeps_a_valid_certificate(ctx, kube, controller, oar_dir):
    current = tls.issue(APP, NAMES, 365, NOW)
    state = with_stored_secret(ctx, kube, make_state(oar_dir), "webhook-tls", current.as_secret())
    out = ctx.run(ctx.on.update_status(), state)
    assert stored_secret(ctx, kube, out, "webhook-tls") == current.as_secret()


def test_new_ca_is_trusted_before_the_new_cert_is_served(ctx, kube, controller, oar_dir):
    import base64

    from conftest import controller_container, manager_container

    old = tls.issue(APP, NAMES, 365, NOW - datetime.timedelta(days=3640))  # its CA expires soon
    first = ctx.run(ctx.on.update_status(), make_state(oar_dir))  # installs the webhook
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is not None
    # The manager is not ready in this hook, so only the early webhook update can have run.
    controller.manager_ready = False
    containers = {controller_container(oar_dir), manager_container(ready=False)}
    state = with_stored_secret(
        ctx, kube, make_state(oar_dir, containers=containers), "webhook-tls", old.as_secret()
    )
    out = ctx.run(ctx.on.update_status(), state)
    assert first.unit_status.name == "active" and out.unit_status.name == "waiting"

    renewed = tls.WebhookTLS.from_secret(stored_secret(ctx, kube, out, "webhook-tls"))
    assert renewed.ca_cert != old.ca_cert
    hook = kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods")
    bundle = base64.b64decode(hook["webhooks"][0]["clientConfig"]["caBundle"]).decode()
    assert bundle == renewed.ca_cert + old.ca_cert
