#!/usr/bin/env python3
"""The L2S-M control plane under Juju: SDN controller, operator, CRDs, webhook, resync."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import ops
import pydantic
import tls
import workload
from lightkube.core.exceptions import ApiError
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Pod, Service
from models import CharmConfig, CreateNetworkParams, DeleteNetworkParams, ExistingNetworkParams, NoParams
from secret_store import JujuSecrets, KubernetesSecrets, SecretStore

from l2sm_charmlib import l2sm_controller
from l2sm_charmlib.kube import L2SM_KINDS, NAD_CRD_NAME, L2Network
from l2sm_charmlib.reconcile import Blocked, ReconcilingCharm, Refused, Waiting
from l2sm_controlplane import objects
from l2sm_controlplane.crds import CRD_KINDS, crd_name, custom_resource_definitions
from l2sm_controlplane.resync import PodPorts, ResyncReport, resync_cluster
from l2sm_controlplane.vnets import OPENFLOW_APP, VNETS_APP, ControllerError, VnetsClient
from l2sm_core import attachments
from l2sm_core.manifests import (
    OWNER,
    OWNER_KIND,
    OWNER_KIND_ACTION,
    OWNER_KIND_APPLICATION,
    deleting,
    foreign_refusal,
    identity,
    lacking,
    made_by,
    owner_of,
    ownership,
)
from l2sm_core.validation import describe_validation_error, shown, unicast_ipv4
from l2sm_knf.kube import KubeForbidden, KubeForeign, KubeNotFound

logger = logging.getLogger(__name__)

RELATION = "l2sm-controller"
CREDENTIALS_LABEL = "controller-credentials"
TLS_LABEL = "webhook-tls"
# The controller is in this pod: the charm container reaches its REST API on localhost.
LOCAL_REST_URL = f"http://127.0.0.1:{objects.REST_PORT}"
# A started manager needs a few seconds; waiting for it in the same hook lets the webhook,
# status and relation data follow at once instead of at the next update-status.
MANAGER_START_WAIT = 30.0
_MISSING_ARCHIVE = f"{workload.VNETS_ARCHIVE} not in controller-image: attach an l2sm-controller image"
_NO_OPENFLOW = (
    f"ONOS in controller-image has no OpenFlow app ({OPENFLOW_APP}): switches cannot connect; "
    "attach an l2sm-controller image"
)
_NO_NETWORK = "parameter 'name': no L2Network named {}; list-networks shows them"
# The upstream operator's one finalizer, on L2S-M objects and on the pods it attaches.
OPERATOR_FINALIZER = "l2sm.operator.io/finalizer"
# A pod this young may still be being attached: the operator posts its ports itself, and a
# resync that listed it after reading the controller would post them too (held twice). The
# webhook and the operator attach a pod within seconds; a minute leaves them ample room.
POD_GRACE = datetime.timedelta(seconds=60)
# Events after which the controller may have come back without its in-memory state.
# Juju 2.9 has no Pebble check events (they came in 3.6): there update-status alone sees a
# controller that restarted inside its container, within one update-status interval.
RESYNC_EVENTS = (
    ops.PebbleReadyEvent,
    ops.PebbleCheckRecoveredEvent,
    ops.UpdateStatusEvent,
    ops.LeaderElectedEvent,
)


class L2smControllerCharm(ReconcilingCharm):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._secret_store: SecretStore | None = None
        self._stored.set_default(
            last_resync="",
            last_resync_summary="",
            last_repair="",
            last_repair_summary="",
            last_good_config="",
            # Pod uid -> network -> the switch ports it was first seen to hold (JSON; live
            # pods only): an annotation edited later moves nothing.
            attached_ports="{}",
            # Whether each workload answered since its plan was last (re)started: what a
            # Pebble that counts no check successes (Juju 2.9's) cannot say.
            served_controller=False,
            served_manager=False,
        )
        # The check events fire on Juju 3.6 and later only; nothing depends on them, they
        # only make a restart visible sooner than the next update-status.
        for event in (
            self.on.controller_pebble_ready,
            self.on.manager_pebble_ready,
            self.on.controller_pebble_check_failed,
            self.on.controller_pebble_check_recovered,
            self.on.manager_pebble_check_failed,
            self.on.manager_pebble_check_recovered,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.update_status,
            self.on[RELATION].relation_joined,
            self.on[RELATION].relation_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.remove, self._on_remove)
        framework.observe(self.on.list_networks_action, self._on_list_networks)
        framework.observe(self.on.show_network_action, self._on_show_network)
        framework.observe(self.on.create_network_action, self._on_create_network)
        framework.observe(self.on.delete_network_action, self._on_delete_network)
        framework.observe(self.on.controller_status_action, self._on_controller_status)

    # -- inputs -------------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.model.name

    @property
    def pod_name(self) -> str:
        return self.unit.name.replace("/", "-")

    def _config(self) -> CharmConfig:
        """The config to act on. A refused option leaves the last good config serving, so the
        relation data and the workloads stay as they were (collect-status names the option)."""
        try:
            config = self.typed_config(CharmConfig)
        except Blocked as exc:
            last_good = self._last_good_config()
            if last_good is None:
                raise  # nothing to fall back on: stop before acting
            logger.warning("refused config, the last good one still serves: %s", exc)
            return last_good
        good = config.model_dump_json()
        if self._stored.last_good_config != good:
            self._stored.last_good_config = good
        return config

    def _last_good_config(self) -> CharmConfig | None:
        """The config last acted on, if this revision still takes it: a later revision may
        tighten a rule, and a value it refuses must not serve as if it had been checked."""
        if not self._stored.last_good_config:
            return None
        try:
            return CharmConfig.model_validate_json(self._stored.last_good_config)
        except pydantic.ValidationError as exc:
            logger.warning(
                "the stored last good config no longer validates, so it cannot serve: %s",
                describe_validation_error(exc, "option"),
            )
            return None

    @property
    def secrets(self) -> SecretStore:
        """Juju secrets where this Juju has them, else the charm's own Kubernetes Secret."""
        if self._secret_store is None:
            own = KubernetesSecrets(self.kube, self.app.name, self.namespace)
            has_secrets = self.model.juju_version.has_secrets  # Juju 3.0.3 and later
            self._secret_store = JujuSecrets(self.model, self.app, own) if has_secrets else own
        return self._secret_store

    def _vnets(self) -> VnetsClient:
        return VnetsClient(LOCAL_REST_URL, workload.REST_USERNAME, workload.REST_PASSWORD)

    # -- reconcile ----------------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        if not self.unit.is_leader():
            self._stand_down()  # one unit runs the controller; collect-status tells the others why
            return
        ready = False
        try:
            ready = self._converge(event)
        except ControllerError as exc:
            # The controller went away mid-way; its check or update-status brings us back.
            logger.warning("controller stopped answering: %s", exc)
        except KubeForbidden as exc:
            self.record_stop(exc)
            return  # nothing can be read without --trust, so nothing is published
        except (Blocked, Waiting, KubeNotFound) as exc:
            self.record_stop(exc)
        except KubeForeign as exc:
            # A name we use is taken by an object that is not ours: left alone, and said so.
            self.record_stop(Blocked(str(exc)))
        # Published however far the reconcile got: related charms must not keep reading
        # "ready" from a controller that stopped short.
        if self._publish(ready) and isinstance(self.secrets, JujuSecrets):
            # The relation data names the Juju secrets now: a Juju 2.9 past's Secret can go.
            self.secrets.retire_legacy()

    def _converge(self, event: ops.EventBase) -> bool:
        """Cluster objects, certificates, controller, resync, manager, webhook: True when all
        are in place."""
        config = self._config()
        self._require_cluster()
        self._apply_cluster_objects()
        tls_bundle = self._webhook_tls(config)
        webhook = objects.pod_webhook(self.app.name, self.namespace, tls_bundle.ca_bundle())
        if self.kube.get(MutatingWebhookConfiguration, webhook["metadata"]["name"]) is not None:
            # A new CA must be trusted before the manager serves a certificate from it.
            self.kube.apply(webhook)
        if self._start_controller():
            if isinstance(event, RESYNC_EVENTS):
                self._resync()
            if self._start_manager(tls_bundle):
                self.kube.apply(webhook)
                return True
        return False

    def _stand_down(self) -> None:
        """A unit that lost leadership stops its workloads: a second manager would hold the
        operator's lease and a second ONOS would take ports the Services no longer reach."""
        for name in ("controller", "manager"):
            self._stop_workload(name, "not the leader")

    def _stop_workload(self, name: str, why: str) -> None:
        container = self.unit.get_container(name)
        if not container.can_connect():
            return
        running = [svc for svc, info in container.get_services().items() if info.is_running()]
        if running:
            container.stop(*running)
            logger.warning("%s: stopped %s in %s", why, ", ".join(running), name)

    def _require_cluster(self) -> None:
        if self.kube.get(CustomResourceDefinition, NAD_CRD_NAME) is None:
            raise Blocked(f"Multus not found: install it (CRD {NAD_CRD_NAME} is missing)")
        self._require_cluster_webhooks()

    def _require_cluster_webhooks(self) -> None:
        ours = objects.webhook_configuration_name(self.app.name, self.namespace)
        for config in self.kube.list(MutatingWebhookConfiguration):
            name = config["metadata"]["name"]
            theirs = name != ours or bool(lacking(config, self.identity))
            if theirs and any(_mutates_l2sm_pods(hook) for hook in config.get("webhooks") or []):
                # Two pod mutators would each hand out interfaces: one L2S-M per cluster.
                raise Blocked(f"another L2S-M is installed (webhook {name}): remove it or this application")

    @property
    def identity(self) -> dict[str, str]:
        """The labels on everything this application makes (model name = namespace)."""
        return identity(self.app.name, self.namespace)

    def _check_crds(self, crds: list[dict[str, Any]]) -> None:
        """Blocked if a CRD of ours is another installation's: applying it would rewrite the
        schema of every object of its kind, and deleting it deletes them all."""
        for crd in crds:
            live = self.kube.get(CustomResourceDefinition, crd["metadata"]["name"])
            if live is not None and lacking(live, self.identity):
                labels = " ".join(f"{k}={v}" for k, v in lacking(live, self.identity).items())
                raise Blocked(
                    foreign_refusal(
                        live,
                        self.identity,
                        "never delete a CRD to make room (every object of its kind goes with it): "
                        "remove the installation that made it, or, if that is gone, hand it over "
                        f"(kubectl label --overwrite crd {crd['metadata']['name']} {labels})",
                    )
                )

    def _apply_cluster_objects(self) -> None:
        crds = custom_resource_definitions(self.app.name, self.namespace)
        self._check_crds(crds)
        for crd in crds:
            self.kube.apply(crd)
        self.kube.apply(objects.sdn_service(self.app.name, self.namespace, self.pod_name))
        self.kube.apply(objects.webhook_service(self.app.name, self.namespace, self.pod_name))

    def _webhook_dns_names(self) -> list[str]:
        service = objects.webhook_service_name(self.app.name)
        return [f"{service}.{self.namespace}.svc", f"{service}.{self.namespace}.svc.cluster.local"]

    def _webhook_tls(self, config: CharmConfig) -> tls.WebhookTLS:
        """The stored bundle, issued on first use and reissued before it expires."""
        now = datetime.datetime.now(datetime.timezone.utc)
        names = self._webhook_dns_names()
        stored = self.secrets.get(TLS_LABEL)
        if stored is None:
            bundle = tls.issue(self.app.name, names, config.webhook_certificate_days, now)
            self.secrets.put(TLS_LABEL, bundle.as_secret(), "L2S-M webhook CA and cert")
            logger.info("issued webhook certificate for %s", ", ".join(names))
            return bundle
        current = tls.WebhookTLS.from_secret(stored)
        reason = current.needs_renewal(names, config.webhook_renew_days, now)
        if reason is None:
            return current
        bundle = tls.issue(self.app.name, names, config.webhook_certificate_days, now, ca=current)
        self.secrets.put(TLS_LABEL, bundle.as_secret(), "L2S-M webhook CA and cert")
        logger.info("renewed webhook certificate: %s", reason)
        return bundle

    def _start_controller(self) -> bool:
        container = self.unit.get_container("controller")
        if not container.can_connect():
            raise Waiting("waiting for the controller container")
        layer = workload.controller_layer()
        if workload.plan_differs(container.get_plan(), layer):
            container.add_layer("controller", layer, combine=True)
            self._stored.served_controller = False
            _replan(container, "controller-image", "an l2sm-controller image")
        client = self._vnets()
        if not client.onos_ready():
            raise Waiting("controller starting")
        # The image's entrypoint activates it; a plan that bypasses it may not.
        openflow = client.app_state(OPENFLOW_APP)
        if openflow is None:
            raise Blocked(_NO_OPENFLOW)
        if openflow != "ACTIVE":
            client.activate_app(OPENFLOW_APP)
            logger.info("activated ONOS's OpenFlow app (it was %s)", openflow)
        state = client.app_state(VNETS_APP)
        if state == "INSTALLED":
            client.activate_app(VNETS_APP)
            logger.info("activated the installed vnets app")
        elif state is None:
            try:
                archive = container.pull(workload.VNETS_ARCHIVE, encoding=None).read()
            except (ops.pebble.PathError, FileNotFoundError):
                raise Blocked(_MISSING_ARCHIVE) from None
            client.install_app(archive)
            logger.info("installed the vnets app into the controller")
        ready = client.is_ready()
        if ready and not self._stored.served_controller:
            self._stored.served_controller = True
        return ready

    def _start_manager(self, bundle: tls.WebhookTLS) -> bool:
        container = self.unit.get_container("manager")
        if not container.can_connect():
            raise Waiting("waiting for the manager container")
        for name, content in (("tls.crt", bundle.cert), ("tls.key", bundle.key)):
            path = f"{workload.WEBHOOK_CERT_DIR}/{name}"
            try:
                same = container.pull(path).read() == content
            except (ops.pebble.PathError, FileNotFoundError):
                same = False
            if not same:  # the manager's cert watcher reloads it; no restart
                container.push(path, content, make_dirs=True, permissions=0o600)
        layer = workload.manager_layer(self.namespace)
        started = False
        if workload.plan_differs(container.get_plan(), layer):
            container.add_layer("manager", layer, combine=True)
            self._stored.served_manager = False
            _replan(container, "manager-image", "an l2sm-controller-manager image")
            started = True
        ready = _manager_ready(container, wait=MANAGER_START_WAIT if started else 0.0)
        if ready and not self._stored.served_manager:
            self._stored.served_manager = True
        return ready

    # -- resync -------------------------------------------------------------------------------

    def _live_networks(self) -> set[str]:
        return {n["metadata"]["name"] for n in self.kube.list(L2Network) if not deleting(n)}

    def _l2sm_pods(self) -> list[attachments.PodAttachments]:
        """Every L2S-M pod of the cluster; one with a malformed annotation (any tenant can
        write one) holds nothing through it, and is named in the log."""
        pods = attachments.read_pods(self.kube.list(Pod, labels={attachments.L2SM_POD_LABEL: "true"}))
        for pod in pods:
            for problem in pod.problems:
                logger.warning("skipping pod %s: %s", pod.pod, problem)
        return pods

    def _settled_pods(self) -> list[tuple[attachments.PodAttachments, dict[str, list[str]]]]:
        """Every L2S-M pod with the ports it was attached with. Upstream reads `l2sm/networks`
        only when a pod starts, so an edit made later (anyone may `kubectl annotate`) changes
        nothing in the pod: trusting it would move its ports into other networks. What each
        pod was first seen to hold is kept in stored state. A new leader, or a new charm
        container, starts with no memory and trusts the annotations it first sees."""
        try:
            memory = json.loads(self._stored.attached_ports)
        except (TypeError, ValueError):  # only this charm writes it: should it not read, start afresh
            memory = {}
        settled = attachments.settle_endpoints(self._l2sm_pods(), memory if isinstance(memory, dict) else {})
        for pod in settled.edited:
            logger.warning(
                "pod %s: %s changed while it runs; its ports stay where they were attached",
                pod,
                attachments.L2SM_NETWORKS_ANNOTATION,
            )
        remembered = json.dumps(settled.memory, sort_keys=True, separators=(",", ":"))
        if self._stored.attached_ports != remembered:
            self._stored.attached_ports = remembered
        return list(settled.pods)

    def _pods(self) -> list[PodPorts]:
        """Every L2S-M pod with the ports it was attached with, gone or young as the API shows."""
        now = datetime.datetime.now(datetime.timezone.utc)
        settled = self._settled_pods()
        return [PodPorts(pod.pod, held, gone=pod.gone, young=_young(pod, now)) for pod, held in settled]

    def _resync(self) -> ResyncReport:
        # l2sm_controlplane.resync: live networks, the controller, then the pods, and a
        # network deleted while (re)made taken out of the controller again.
        report, young = resync_cluster(self._vnets(), self._live_networks, self._pods)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self._stored.last_resync = now
        self._stored.last_resync_summary = report.summary()
        if report.repaired:
            # Kept apart: the next resync, with nothing to repair, must not hide this one.
            self._stored.last_repair = now
            self._stored.last_repair_summary = report.summary()
        # A new pod's ports, held before it is past its grace period, are routine.
        unexplained = {p for held_ports in report.unexplained.values() for p in held_ports} - young
        if report.repaired or report.failures or report.ports_removed or unexplained:
            logger.warning("resync repaired the controller: %s", report.summary())
        else:
            logger.info("resync: %s", report.summary())
        return report

    # -- relation -----------------------------------------------------------------------------

    def _publish(self, ready: bool) -> bool:
        """Tell related charms where the controller is, and whether it is ready yet. True when
        every relation holds what this dispatch would say (also when there is none)."""
        relations = self.model.relations[RELATION]
        if not relations:
            return True
        cluster_ip = self._sdn_cluster_ip()
        if not cluster_ip:
            return False  # nothing useful to say before the Service has an address
        try:
            self._check_cluster_ip(cluster_ip)
            credentials = {"username": workload.REST_USERNAME, "password": workload.REST_PASSWORD}
            if self.secrets.get(CREDENTIALS_LABEL) != credentials:
                self.secrets.put(CREDENTIALS_LABEL, credentials, "L2S-M REST API")
            answers = [(relation, self._answer(relation, cluster_ip, ready)) for relation in relations]
        except (Blocked, KubeForeign) as exc:
            # Nothing written; a refusal met earlier in this dispatch stays the status.
            logger.warning("nothing published: %s", exc)
            self.record_stop(exc if isinstance(exc, Blocked) else Blocked(str(exc)))
            return False
        # All checked before any is written: every relation says the same, or none anything new.
        for relation, data in answers:
            l2sm_controller.publish(relation, self.app, data)
        return True

    def _answer(
        self, relation: ops.Relation, cluster_ip: str, ready: bool
    ) -> l2sm_controller.ControllerProviderAppData:
        """What one relation is told; Blocked, naming the field, if the interface refuses it."""
        host = f"{objects.sdn_service_name(self.app.name)}.{self.namespace}.svc.cluster.local"
        try:
            return l2sm_controller.ControllerProviderAppData.model_validate(
                {
                    "host": host,
                    "namespace": self.namespace,
                    "cluster-ip": cluster_ip,
                    "openflow-port": objects.OPENFLOW_PORT,
                    "rest-url": f"http://{cluster_ip}:{objects.REST_PORT}",
                    "ready": ready,
                    # A reference only (granted to this relation where it is a Juju secret).
                    "credentials-secret": self.secrets.reference(CREDENTIALS_LABEL, relation),
                }
            )
        except pydantic.ValidationError as exc:
            raise Blocked(self._unpublishable(describe_validation_error(exc, "field"))) from None

    def _sdn_cluster_ip(self) -> str | None:
        service = self.kube.get(Service, objects.sdn_service_name(self.app.name), self.namespace)
        return ((service or {}).get("spec") or {}).get("clusterIP") or None

    def _unpublishable(self, reason: str) -> str:
        hint = ""
        if "cluster-ip" in reason:
            # Switches reach the controller at the Service's address, as an IPv4 address only.
            service = objects.sdn_service_name(self.app.name)
            hint = f"; the Service {service} needs an IPv4 address (an IPv4 or dual-stack cluster)"
        return f"relation {RELATION}: nothing published: {reason}{hint}"

    def _check_cluster_ip(self, cluster_ip: str) -> None:
        """Blocked if the interface would refuse the Service's address (an IPv6-only cluster
        gives an IPv6 one), checked alone so the status names it once, whoever asks."""
        try:
            unicast_ipv4(cluster_ip)  # the interface's own rule for cluster-ip
        except ValueError as exc:
            raise Blocked(self._unpublishable(f"field 'cluster-ip': {exc}")) from None

    def _assess_publishable(self) -> None:
        """Blocked, as the reconcile is, while the Service's address cannot be published."""
        cluster_ip = self._sdn_cluster_ip() if self.model.relations[RELATION] else None
        if cluster_ip:
            self._check_cluster_ip(cluster_ip)

    # -- removal ------------------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        if self.app.planned_units() > 0:
            return  # scaling down: the remaining leader keeps the cluster objects
        try:
            # Asked before anything goes: whether the L2S-M in charge here was ours.
            in_charge = self._in_charge()
            # Webhook first: left without its server it would block every L2S-M pod.
            self._delete_own(
                MutatingWebhookConfiguration,
                objects.webhook_configuration_name(self.app.name, self.namespace),
            )
            if in_charge:
                self._release_finalizers()
            else:
                logger.warning(
                    "leaving the L2S-M finalizers alone: the L2S-M installed here is not this "
                    "application's (its CRDs or pod webhook belong to another)"
                )
            for name in (
                objects.webhook_service_name(self.app.name),
                objects.sdn_service_name(self.app.name),
            ):
                self._delete_own(Service, name, self.namespace)
            # Juju removes its own secrets with the application; the Secret of Juju 2.9
            # (or one a 2.9 past left) is the charm's to remove.
            KubernetesSecrets(self.kube, self.app.name, self.namespace).delete()
            remaining = sorted(
                f"{obj['kind']} {_ns(obj)}/{obj['metadata']['name']}"
                for kind in L2SM_KINDS
                for obj in self.kube.list(kind)
            )
            if remaining:
                # Deleting a CRD deletes every object of its kind in every namespace, and
                # hangs on their finalizers once the manager is gone.
                logger.warning(
                    "keeping the L2S-M CRDs: %d object(s) still exist: %s",
                    len(remaining),
                    ", ".join(remaining),
                )
                return
            for kind in CRD_KINDS:
                self._delete_own(CustomResourceDefinition, crd_name(kind))
            logger.info("removed the L2S-M CRDs: no L2S-M object was left")
        except KubeForbidden:
            logger.error(
                "cannot clean up without --trust: delete the webhook %s by hand",
                objects.webhook_configuration_name(self.app.name, self.namespace),
            )

    def _delete_own(self, kind: Any, name: str, namespace: str | None = None) -> None:
        """Delete an object of ours by name; one of that name that is not ours stays, logged."""
        try:
            self.kube.delete(kind, name, namespace, owner=self.identity)
        except KubeForeign as exc:
            logger.warning("not deleting: %s", exc)

    def _in_charge(self) -> bool:
        """Whether the L2S-M operator that put the finalizers on was ours: the L2Network CRD is
        ours and no other L2S-M pod webhook exists (one per cluster, see _require_cluster)."""
        crd = self.kube.get(CustomResourceDefinition, crd_name("L2Network"))
        if crd is None or lacking(crd, self.identity):
            return False
        try:
            self._require_cluster_webhooks()
        except Blocked:
            return False
        return True

    def _release_finalizers(self) -> None:
        """With the manager gone nothing ever runs its finalizer: every L2Network and L2S-M
        pod deleted afterwards would hang in Terminating. What the finalizer would clean up
        lives in this controller, which goes too; so stop the manager (it would put the
        finalizer back) and take the finalizer off every object that carries it."""
        self._stop_workload("manager", "the application is being removed")
        released = []
        for kind in (*L2SM_KINDS, Pod):
            labels = {attachments.L2SM_POD_LABEL: "true"} if kind is Pod else None
            for obj in self.kube.list(kind, labels=labels):
                what = f"{obj['kind']} {_ns(obj)}/{obj['metadata']['name']}"
                try:
                    if not self.kube.remove_finalizer(obj, kind, OPERATOR_FINALIZER):
                        continue
                except ApiError as exc:  # e.g. changed since it was read: the next one still goes
                    logger.warning("could not take the L2S-M finalizer off %s: %s", what, exc)
                    continue
                released.append(f"{what}{' (being deleted)' if deleting(obj) else ''}")
        if released:
            logger.warning(
                "took the L2S-M operator's finalizer off %d object(s), which nothing could finish "
                "without the manager: %s",
                len(released),
                ", ".join(released),
            )

    # -- status -------------------------------------------------------------------------------

    def assess(self) -> ops.StatusBase:
        if not self.unit.is_leader():
            return ops.BlockedStatus(
                "the controller is not clustered: only the leader runs; remove this unit"
            )
        try:
            self._assess_config()
            self._require_cluster()
            self._assess_publishable()
            controller = self.unit.get_container("controller")
            manager = self.unit.get_container("manager")
            if not controller.can_connect():
                return ops.WaitingStatus("waiting for the controller container")
            client = self._vnets()
            if not client.onos_ready():
                return ops.WaitingStatus("controller starting")
            openflow = client.app_state(OPENFLOW_APP)
            if openflow is None:
                raise Blocked(_NO_OPENFLOW)
            if openflow != "ACTIVE":
                return ops.WaitingStatus(f"activating ONOS's OpenFlow app (it is {openflow})")
            if not client.is_ready():
                if client.app_state(VNETS_APP) is None and not controller.exists(workload.VNETS_ARCHIVE):
                    raise Blocked(_MISSING_ARCHIVE)
                if _check_passed_before(
                    controller, workload.CONTROLLER_CHECK, self._stored.served_controller
                ):
                    return ops.WaitingStatus(
                        "vnets app not answering: networks and ports wait; switches stay connected"
                    )
                return ops.WaitingStatus("vnets app starting")
            if not manager.can_connect() or not _manager_ready(manager):
                if manager.can_connect() and _check_passed_before(
                    manager, workload.MANAGER_CHECK, self._stored.served_manager
                ):
                    return ops.WaitingStatus(
                        "manager restarting: new L2S-M pods wait; switches stay connected"
                    )
                return ops.WaitingStatus("manager starting")
            switches = sum(1 for d in client.devices() if d.available)
        except ControllerError as exc:
            return ops.WaitingStatus(f"controller not answering: {type(exc).__name__}")
        return ops.ActiveStatus(
            f"controller ready, {switches} switch{'es' if switches != 1 else ''} connected"
        )

    def _assess_config(self) -> None:
        try:
            self.typed_config(CharmConfig)
        except Blocked as exc:
            if self._last_good_config() is not None:
                raise Blocked(f"{exc} (the last good config still serves)") from None
            raise

    # -- actions ------------------------------------------------------------------------------

    def _on_list_networks(self, event: ops.ActionEvent) -> None:
        self.run_action(event, NoParams, self._list_networks)

    def _on_show_network(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ExistingNetworkParams, self._show_network)

    def _on_create_network(self, event: ops.ActionEvent) -> None:
        self.run_action(event, CreateNetworkParams, self._create_network)

    def _on_delete_network(self, event: ops.ActionEvent) -> None:
        self.run_action(event, DeleteNetworkParams, self._delete_network)

    def _on_controller_status(self, event: ops.ActionEvent) -> None:
        self.run_action(event, NoParams, self._controller_status)

    def _require_l2sm_kinds(self) -> None:
        """Before the first start and after removal the cluster has no L2Network kind."""
        if self.kube.get(CustomResourceDefinition, crd_name("L2Network")) is None:
            raise Refused(
                f"the L2Network kind is not installed ({crd_name('L2Network')} is missing): "
                f"{self.app.name} installs it when it starts; wait until it is active"
            )

    def _network(self, name: str) -> dict[str, Any] | None:
        """The L2Network of that name in any namespace: L2S-M looks names up cluster-wide."""
        self._require_l2sm_kinds()
        return next((n for n in self.kube.list(L2Network) if n["metadata"]["name"] == name), None)

    def _attached_pods(self, name: str) -> list[str]:
        """Live pods on the network: by the ports they were attached with (an edited
        annotation does not detach a pod), else, with no port yet, by what they ask for."""
        pods = []
        for pod, held in self._settled_pods():
            on = set(held) if held else {r.name for r in pod.requests}
            if not pod.gone and name in on:
                pods.append(pod.pod)
        return sorted(pods)

    def _controller_view(self, name: str) -> str:
        try:
            return "present" if self._vnets().network_exists(name) else "absent"
        except ControllerError as exc:
            return f"unknown ({type(exc).__name__})"

    def _list_networks(self, _: NoParams) -> dict[str, Any]:
        self._require_l2sm_kinds()
        rows = [
            {
                "name": n["metadata"]["name"],
                "namespace": _ns(n),
                "type": n.get("spec", {}).get("type", ""),
                "owner": owner_of(n),
                "connected-pods": int((n.get("status") or {}).get("connectedPodCount") or 0),
                "controller": self._controller_view(n["metadata"]["name"]),
            }
            for n in sorted(self.kube.list(L2Network), key=lambda n: n["metadata"]["name"])
        ]
        return {"count": len(rows), "networks": json.dumps(rows)}

    def _show_network(self, params: ExistingNetworkParams) -> dict[str, Any]:
        network = self._network(params.name)
        if network is None:
            raise Refused(_NO_NETWORK.format(shown(params.name)))
        pods = self._attached_pods(params.name)
        try:
            described = self._vnets().describe_network(params.name)
        except ControllerError as exc:
            described = f"unavailable: {type(exc).__name__}"
        return {
            "name": params.name,
            "namespace": _ns(network),
            "owner": owner_of(network),
            "spec": json.dumps(network.get("spec") or {}, sort_keys=True),
            "status": json.dumps(network.get("status") or {}, sort_keys=True),
            "attached-pods": json.dumps(pods),
            "controller": described,
        }

    def _action_owner(self) -> dict[str, str]:
        """The owner labels of a network this application's create-network made (in this
        model's namespace, as the network charm's owner labels are read)."""
        return {OWNER_KIND: OWNER_KIND_ACTION, OWNER: self.app.name}

    def _create_network(self, params: CreateNetworkParams) -> dict[str, Any]:
        existing = self._network(params.name)
        if existing is not None:
            raise Refused(
                f"parameter 'name': an L2Network named {params.name!r} already exists in namespace "
                f"{_ns(existing)!r} (owner: {owner_of(existing)}); L2S-M names are cluster-wide"
            )
        try:
            self.kube.apply(
                objects.action_network(self.app.name, self.namespace, params.name, params.cidr or None)
            )
        except KubeForeign as exc:  # made meanwhile by someone else
            raise Refused(f"parameter 'name': {exc}") from None
        return {"name": params.name, "namespace": self.namespace, "cidr": params.cidr or "none (L2 only)"}

    def _delete_network(self, params: DeleteNetworkParams) -> dict[str, Any]:
        network = self._network(params.name)
        if network is None:
            raise Refused(_NO_NETWORK.format(shown(params.name)))
        labels = network["metadata"].get("labels") or {}
        if labels.get(OWNER_KIND) == OWNER_KIND_APPLICATION:
            owner = labels.get(OWNER, "?")
            raise Refused(
                f"parameter 'name': {params.name!r} is owned by the l2sm-network application {owner!r}: "
                f"remove that application instead (juju remove-application {owner})"
            )
        mine = self._action_owner()
        if ownership(network) and (lacking(network, mine) or _ns(network) != self.namespace):
            # Another application of ours made it (another controller, maybe one of the same
            # name in another model): only that one deletes it, force or not.
            fix = f"run delete-network on the application that made it ({made_by(network)}"
            fix += f" in model {_ns(network)!r})" if not lacking(network, mine) else ")"
            raise Refused(
                f"parameter 'name': {params.name!r} is not this application's: "
                + foreign_refusal(network, mine, fix).replace(
                    "its labels are not ours", f"it is in namespace {_ns(network)!r}"
                )
            )
        if labels.get(OWNER_KIND) != OWNER_KIND_ACTION and not params.force:
            raise Refused(
                f"parameter 'force': {params.name!r} was not made by create-network (no owner label: "
                "made with helm or kubectl?); rerun with force=true to delete it anyway"
            )
        pods = self._attached_pods(params.name)
        if pods and not params.force:
            raise Refused(
                f"parameter 'force': {len(pods)} pod(s) are attached to {params.name!r} "
                f"({', '.join(pods)}); detach them or rerun with force=true"
            )
        try:
            # Ours, or (forced) one that carries no label of ours: checked again on the live object.
            self.kube.delete(L2Network, params.name, _ns(network), owner=mine if ownership(network) else None)
        except KubeForeign as exc:
            raise Refused(f"parameter 'name': {exc}") from None
        return {"deleted": params.name, "namespace": _ns(network), "detached-pods": json.dumps(pods)}

    def _controller_status(self, _: NoParams) -> dict[str, Any]:
        results: dict[str, Any] = {
            "last-resync": self._stored.last_resync or "never",
            "last-resync-summary": self._stored.last_resync_summary or "",
            "last-repair": self._stored.last_repair or "never",
            "last-repair-summary": self._stored.last_repair_summary or "",
        }
        client = self._vnets()
        try:
            client.status()
            devices = client.devices()
        except ControllerError as exc:
            return results | {"rest": f"not ready: {exc}"}
        return results | {
            "rest": "ready",
            "switches-connected": sum(1 for d in devices if d.available),
            "switches": json.dumps([{"id": d.id, "available": d.available} for d in devices]),
        }


def _replan(container: ops.Container, resource: str, expected: str) -> None:
    try:
        container.replan()
    except ops.pebble.ChangeError as exc:
        raise Blocked(f"{resource} does not start ({exc.err.splitlines()[0]}): attach {expected}") from None


def _manager_ready(container: ops.Container, wait: float = 0.0) -> bool:
    """The manager's readiness check has passed, or its /readyz answers (within `wait` s)."""
    return _check_passed(container, workload.MANAGER_CHECK) or workload.http_ok(
        workload.MANAGER_READYZ_URL, wait=wait
    )


def _check_passed_before(container: ops.Container, name: str, served: bool) -> bool:
    """A check that is down now but passed since its plan started: the workload ran, and
    stopped answering (a restart, a hang), rather than never having started. A Pebble that
    counts no successes (Juju 2.9's, before Pebble 1.23) leaves it to what the charm saw
    (`served`)."""
    info = container.get_checks(name).get(name)
    if info is None or info.status != ops.pebble.CheckStatus.DOWN:
        return False
    return served if info.successes is None else info.successes > 0


def _check_passed(container: ops.Container, name: str) -> bool:
    """A check that is up and has passed at least once. Pebble starts checks as up, and the
    Pebble of Juju 2.9 counts no successes (None): there the caller asks the workload."""
    info = container.get_checks(name).get(name)
    if info is None or info.status != ops.pebble.CheckStatus.UP:
        return False
    return bool(info.successes)


def _mutates_l2sm_pods(hook: dict[str, Any]) -> bool:
    """A pod mutator for `l2sm: "true"` pods: L2S-M's own selector (a path alone says little:
    controller-runtime gives every pod webhook the same one)."""
    selector = ((hook.get("objectSelector") or {}).get("matchLabels") or {}).get("l2sm")
    rules = hook.get("rules") or []
    on_pods = not rules or any("pods" in (r.get("resources") or []) for r in rules)
    return selector == "true" and on_pods


def _young(pod: attachments.PodAttachments, now: datetime.datetime) -> bool:
    """Within its grace period (see POD_GRACE). A pod whose creation time cannot be read is
    taken as settled: its ports must still be restored after a controller restart."""
    return pod.created is not None and now - pod.created < POD_GRACE


def _ns(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace") or ""


__all__ = ["ApiError", "L2smControllerCharm"]

if __name__ == "__main__":  # pragma: nocover
    ops.main(L2smControllerCharm)
