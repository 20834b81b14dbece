"""Where the charm keeps its secrets (the webhook CA and key, the REST credentials).

Juju secrets where the Juju running the model has them (3.0.3 and later); on Juju 2.9,
which OSM runs and which has none, one Kubernetes Secret the charm owns in its namespace.
Both hold the same entries under the same labels, so the rest of the charm never asks
which it has. Contents are never logged.
"""

from __future__ import annotations

import logging

import ops
from lightkube.resources.core_v1 import Secret

from l2sm_controlplane import objects
from l2sm_core.manifests import identity, lacking
from l2sm_knf.kube import Kube, KubeForeign

logger = logging.getLogger(__name__)


class KubernetesSecrets:
    """Every entry in one Secret, `<app>-secrets` (built by `objects.charm_secret`)."""

    def __init__(self, kube: Kube, app: str, namespace: str):
        self._kube = kube
        self._app = app
        self._namespace = namespace
        self._entries: dict[str, dict[str, str]] | None = None

    @property
    def name(self) -> str:
        return objects.charm_secret_name(self._app)

    def entries(self) -> dict[str, dict[str, str]]:
        """What the Secret holds; a Secret of that name that is not ours holds nothing for us
        (its keys would become our CA or credentials), and storing into it is refused."""
        if self._entries is None:
            live = self._kube.get(Secret, self.name, self._namespace)
            if live is not None and lacking(live, self._owner):
                logger.warning("%s", KubeForeign(live, self._owner))
                live = None
            self._entries = objects.charm_secret_entries(live)
        return self._entries

    @property
    def _owner(self) -> dict[str, str]:
        return identity(self._app, self._namespace)

    def get(self, label: str) -> dict[str, str] | None:
        content = self.entries().get(label)
        return dict(content) if content else None

    def put(self, label: str, content: dict[str, str], description: str) -> None:
        entries = {**self.entries(), label: dict(content)}
        # Server-side apply replaces what this manager applied before: every entry goes each time.
        self._kube.apply(objects.charm_secret(self._app, self._namespace, entries))
        self._entries = entries
        logger.info("stored %s (%s) in Secret %s/%s", label, description, self._namespace, self.name)

    def reference(self, label: str, relation: ops.Relation) -> str:
        # Other charms read it with their own trust: nothing to grant.
        return f"kubernetes:{self._namespace}/{self.name}"

    def delete(self) -> None:
        try:
            if self._kube.delete(Secret, self.name, self._namespace, owner=self._owner):
                logger.info("deleted Secret %s/%s", self._namespace, self.name)
        except KubeForeign as exc:
            logger.warning("not deleting: %s", exc)
        self._entries = {}


class JujuSecrets:
    """One application-owned Juju secret per label. An entry that only the Kubernetes Secret
    of a Juju 2.9 past holds moves into a Juju secret, unchanged (the webhook keeps its CA);
    `retire_legacy` deletes that Secret once nothing in it is missing here."""

    def __init__(self, model: ops.Model, app: ops.Application, legacy: KubernetesSecrets):
        self._model = model
        self._app = app
        self._legacy = legacy

    def _secret(self, label: str) -> ops.Secret | None:
        try:
            return self._model.get_secret(label=label)
        except ops.SecretNotFoundError:
            return None

    def get(self, label: str) -> dict[str, str] | None:
        secret = self._secret(label)
        if secret is not None:
            return secret.get_content(refresh=True)
        content = self._legacy.get(label)
        if content is not None:
            self._app.add_secret(content, label=label, description=f"moved from Secret {self._legacy.name}")
            logger.info("moved %s from Secret %s into a Juju secret", label, self._legacy.name)
        return content

    def put(self, label: str, content: dict[str, str], description: str) -> None:
        secret = self._secret(label)
        if secret is None:
            self._app.add_secret(content, label=label, description=description)
        elif secret.get_content(refresh=True) != content:
            secret.set_content(content)

    def reference(self, label: str, relation: ops.Relation) -> str:
        secret = self._secret(label)
        if secret is None:
            raise LookupError(f"no Juju secret labelled {label!r}: store it first")
        secret.grant(relation)
        return secret.id or secret.get_info().id

    def retire_legacy(self) -> None:
        """Delete the Kubernetes Secret a Juju 2.9 past left, once each of its entries is a
        Juju secret (the relation data names the Juju secret by now)."""
        left = self._legacy.entries()
        if left and all(self._secret(label) is not None for label in left):
            self._legacy.delete()


SecretStore = JujuSecrets | KubernetesSecrets
