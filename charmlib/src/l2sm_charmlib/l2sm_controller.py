"""The `l2sm_controller` interface, v0, in one place: its schema, the provider's side
(l2sm-controller publishing where it is), the requirer's side (switch and network charms
reading it) and testing helpers for either side's unit tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import ops
import pydantic

from l2sm_charmlib.hints import integrate_command
from l2sm_charmlib.reconcile import Blocked, Waiting
from l2sm_core.cdn.values import http_url
from l2sm_core.validation import Flag, dns1123_label, dns1123_subdomain, shown, unicast_ipv4
from l2sm_knf.databag import Databag, InvalidDatabag, canonical_json, decode, encode, load_databag

if TYPE_CHECKING:
    from ops import testing as ops_testing

INTERFACE = "l2sm_controller"
_SECRET_ID = re.compile(r"secret:[A-Za-z0-9][A-Za-z0-9/:._-]{0,254}")
# A JSON number only: a port sent as "6633" or true is a mistake on the other side.
StrictPort = Annotated[int, pydantic.Field(strict=True, ge=1, le=65535)]


# -- schema (v0) ---------------------------------------------------------------------------


class ControllerProviderAppData(Databag):
    """`l2sm_controller` interface, v0: what the controller application publishes.

    `cluster-ip` is given beside `host` because switch pods may not resolve cluster DNS.
    The REST credentials are never in the databag, only a reference, `credentials-secret`,
    in one of two forms:

    - `secret:<id>` or `secret://<model uuid>/<id>`: a Juju secret granted to the
      relation, holding `username` and `password` (Juju 3.0.3 and later);
    - `kubernetes:<namespace>/<name>`: a Kubernetes Secret (Juju 2.9, which has no Juju
      secrets), holding the keys `controller-credentials.username` and
      `controller-credentials.password`, base64 as every Secret value. A charm deployed
      with `--trust` reads it through the Kubernetes API (`kubernetes_secret` gives the
      namespace and name). Its other keys are the controller's own.

    A controller whose Juju is upgraded from 2.9 moves the credentials into a Juju secret
    and publishes its id instead; readers follow whichever form they find.
    """

    KUBERNETES_PREFIX: ClassVar[str] = "kubernetes:"
    # Juju writes a secret URI with its model's UUID (`secret://<uuid>/<id>`) where the
    # secret may be read from another model, as across an OSM cross-model relation.
    _MODEL_SECRET_ID: ClassVar[re.Pattern[str]] = re.compile(r"secret://[0-9a-f-]{36}/[a-z0-9]{20}")

    host: str = pydantic.Field(description="In-cluster DNS name of the controller Service")
    # The operator looks for switch attachments (NADs) only here: the Overlay must live here too.
    namespace: str
    cluster_ip: str = pydantic.Field(alias="cluster-ip")
    openflow_port: StrictPort = pydantic.Field(alias="openflow-port")
    rest_url: str = pydantic.Field(alias="rest-url")
    ready: Flag
    credentials_secret: str = pydantic.Field(alias="credentials-secret")

    @pydantic.field_validator("cluster_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return str(unicast_ipv4(value))

    @pydantic.field_validator("rest_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @pydantic.field_validator("credentials_secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if _SECRET_ID.fullmatch(value) or cls._MODEL_SECRET_ID.fullmatch(value):
            return value
        if value.startswith(cls.KUBERNETES_PREFIX):
            namespace, slash, name = value.removeprefix(cls.KUBERNETES_PREFIX).partition("/")
            try:
                if not slash:
                    raise ValueError("no '/' between namespace and name")
                dns1123_label(namespace)
                dns1123_subdomain(name)
            except ValueError as exc:
                raise ValueError(
                    f"{shown(value)} is not a Kubernetes Secret reference "
                    f"(kubernetes:<namespace>/<name>): {exc}"
                ) from None
            return value
        raise ValueError(
            f"{shown(value)} must be a Juju secret id (secret:...) or a Kubernetes Secret "
            "reference (kubernetes:<namespace>/<name>), never the credentials"
        )

    @property
    def kubernetes_secret(self) -> tuple[str, str] | None:
        """(namespace, name) of the Kubernetes Secret holding the credentials, or None when
        they are in a Juju secret."""
        if not self.credentials_secret.startswith(self.KUBERNETES_PREFIX):
            return None
        namespace, _, name = self.credentials_secret.removeprefix(self.KUBERNETES_PREFIX).partition("/")
        return namespace, name

    @pydantic.field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return dns1123_label(value)

    @pydantic.field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return dns1123_subdomain(value)


# -- provider side (the l2sm-controller charm) ---------------------------------------------


def publish(relation: ops.Relation, app: ops.Application, data: ControllerProviderAppData) -> None:
    relation.save(data, app, encoder=canonical_json)


# -- requirer side (the switch and network charms) -----------------------------------------


def controller_data(charm: ops.CharmBase, endpoint: str) -> ControllerProviderAppData:
    """What l2sm-controller published on `endpoint`, once it is ready. No relation is Blocked
    (an operator must integrate); a controller not ready yet is Waiting."""
    relation = charm.model.get_relation(endpoint)
    if relation is None or relation.app is None:
        hint = integrate_command(charm, f"{charm.app.name}:{endpoint}", "l2sm-controller")
        raise Blocked(f"integrate with l2sm-controller: {hint}")
    if not relation.data[relation.app]:
        raise Waiting("waiting for the controller to publish its address")
    try:
        data = load_databag(relation, ControllerProviderAppData, relation.app)
    except InvalidDatabag as exc:
        raise Blocked(f"controller relation data: {exc}") from None
    if not data.ready:
        raise Waiting("waiting for the controller to be ready")
    return data


# -- testing (for either side's unit tests) ------------------------------------------------
# Data goes in through the schema, encoded as `publish` writes it, so a test cannot build what
# l2sm-controller could not send (build a testing.Relation by hand for bad input).
# ops.testing is imported only when called: the charms run without ops[testing].

# A ready controller whose REST credentials are in a Juju secret, by alias, before encoding.
SAMPLE_APP_DATA: Mapping[str, Any] = MappingProxyType(
    {
        "host": "l2sm-controller-sdn.l2sm.svc.cluster.local",
        "namespace": "l2sm",
        "cluster-ip": "10.152.183.20",
        "openflow-port": 6633,
        "rest-url": "http://10.152.183.20:8181",
        "ready": True,
        "credentials-secret": "secret:cs0qk4fmp25c77ek0av0",
    }
)


def controller_relation(
    data: ControllerProviderAppData | Mapping[str, Any] | None = None,
    *,
    endpoint: str = "controller",
    remote_app_name: str = "l2sm-controller",
    **relation: Any,
) -> ops_testing.Relation:
    """l2sm-controller as a switch or network charm's test sees it: the relation on `endpoint`
    with `data` (the schema, or its fields by alias; SAMPLE_APP_DATA when left out) as the
    controller publishes it. Other keyword arguments (id, ...) go to ops.testing.Relation."""
    from ops import testing

    if not isinstance(data, ControllerProviderAppData):
        data = ControllerProviderAppData.model_validate(dict(SAMPLE_APP_DATA if data is None else data))
    return testing.Relation(
        endpoint, remote_app_name=remote_app_name, remote_app_data=encode(data), **relation
    )


def published_controller_data(relation: ops_testing.Relation) -> ControllerProviderAppData:
    """What the controller charm published on `relation` (from a test's output state), read
    strictly: InvalidDatabag for a key outside the schema, a value not JSON or not valid."""
    return decode(relation.local_app_data, ControllerProviderAppData)
