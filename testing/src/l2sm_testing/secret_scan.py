"""Where secret values ended up, over everything a charm produced in a unit test.

The secret values are discovered from what the test saw (the Juju secrets in any output
state, the Secret objects written to or held by the fake cluster), never written into a
test. `Sweep` runs a charm's scenario step by step under a `Capture` (what passes through
ops.Container and the fake clusters) and lists every place the charm produced something:
relation databags, config, stored state, statuses, Juju and Python log lines, action results
and failures, container files, Pebble layers and plans, exec calls, Kubernetes writes and
objects, Juju secrets' contents. `scan` finds each value there in its plain and derived forms
(base64 at any alignment and in either alphabet, JSON-escaped, a PEM body line by line,
re-wrapped, or as DER); `leaks` drops the places an `Allowed` entry names.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from secrets import token_hex, token_urlsafe
from typing import Any
from unittest import mock

import ops
from ops import testing

from l2sm_knf.l2sm_network import FakeCluster
from l2sm_testing.fake_kube import FakeKube

# Content keys naming something private (the last word of the key: `ca-key`, `password`).
SECRET_WORDS = frozenset({"key", "password", "passwd", "token", "secret"})
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.S)
# Shorter values would match by chance. Five bytes give base64 needles of six characters at
# every alignment; shorter derived needles are not kept.
MIN_VALUE = 5
MIN_NEEDLE = 6
# A PEM body line shorter than this (the last one) is too common to name a key.
MIN_PEM_LINE = 16


@dataclasses.dataclass(frozen=True)
class SecretValue:
    label: str  # the Juju secret's label (or id), or the Kubernetes entry's label
    key: str  # the content key
    value: str

    @property
    def origin(self) -> str:
        return f"{self.label}/{self.key}"

    def needles(self) -> list[Needle]:
        return needles(self.value)


@dataclasses.dataclass(frozen=True)
class Needle:
    form: str
    text: str
    # Compared with the haystack stripped of whitespace and escaped newlines (a re-wrapped PEM).
    squeezed: bool = False


@dataclasses.dataclass(frozen=True)
class Place:
    where: str  # e.g. "relation l2sm-controller#1 local_app_data.credentials-secret"
    text: str
    step: str = ""  # the scenario step that produced it


@dataclasses.dataclass(frozen=True)
class Finding:
    secret: SecretValue
    form: str
    where: str
    step: str = ""

    def __str__(self) -> str:
        at = f" (after {self.step})" if self.step else ""
        return f"{self.secret.origin} as {self.form} in {self.where}{at}"


@dataclasses.dataclass(frozen=True)
class Allowed:
    """Where a secret belongs. `place` is a pattern over `Finding.where` (`*` for any text,
    nothing else special), in which `{label}` and `{key}` stand for the secret's own;
    `secrets` one over its origin, `step` one over the step that put it there."""

    place: str
    why: str
    secrets: str = "*"
    step: str = "*"

    def covers(self, finding: Finding) -> bool:
        pattern = self.place.replace("{label}", finding.secret.label).replace("{key}", finding.secret.key)
        return (
            matches(pattern, finding.where)
            and matches(self.secrets, finding.secret.origin)
            and matches(self.step, finding.step)
        )


def matches(pattern: str, text: str) -> bool:
    """`*` matches any text; everything else (brackets included) only itself."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), text, re.S) is not None


# -- the values ------------------------------------------------------------------------------


def is_secret_entry(key: str, value: str) -> bool:
    """A private key in PEM, or an entry whose key's last word names something private."""
    if "PRIVATE KEY-----" in value:
        return True
    if "-----BEGIN" in value:
        return False  # a certificate or a request: public
    return re.split(r"[-_.]", key.lower())[-1] in SECRET_WORDS


def from_content(label: str, content: Mapping[str, str]) -> list[SecretValue]:
    return [
        SecretValue(label, key, value)
        for key, value in sorted(content.items())
        if isinstance(value, str) and is_secret_entry(key, value)
    ]


def juju_secret_values(state: testing.State) -> list[SecretValue]:
    """Every secret entry of every Juju secret in `state`, each revision it shows."""
    found = []
    for secret in sorted(state.secrets, key=lambda s: s.label or s.id):
        label = secret.label or secret.id
        for content in (secret.tracked_content, secret.latest_content):
            found.extend(from_content(label, content))
    return found


def kubernetes_secret_values(objects: Iterable[Mapping[str, Any]]) -> list[SecretValue]:
    """Every secret entry of the Secret objects among `objects` (`data` decoded, and
    `stringData`). A key `label.key` (the controller's entries) splits into both."""
    found = []
    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        content: dict[str, str] = {}
        for name, raw in (obj.get("data") or {}).items():
            try:
                content[name] = base64.b64decode(raw, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError, TypeError):
                continue
        content.update(obj.get("stringData") or {})
        for name, value in content.items():
            label, dot, key = name.rpartition(".")
            if not dot:
                label, key = obj["metadata"]["name"], name
            found.extend(from_content(label, {key: value}))
    return found


def unique(values: Iterable[SecretValue]) -> list[SecretValue]:
    """One per value (the first origin seen), refusing values too short to scan for."""
    seen: dict[str, SecretValue] = {}
    for value in values:
        if len(value.value.strip().encode()) < MIN_VALUE:
            raise ValueError(f"{value.origin}: {len(value.value)} characters are too few to scan for")
        seen.setdefault(value.value, value)
    return list(seen.values())


def _base64_cores(data: bytes) -> Iterator[tuple[str, str]]:
    """The part of data's base64 that does not depend on what precedes or follows it, for
    each of the three alignments data can have inside a longer encoded text."""
    for shift in range(3):
        for alphabet, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * shift + data).decode()
            start = -(-8 * shift // 6)
            end = 8 * (shift + len(data)) // 6
            yield f"{alphabet} (offset {shift})", encoded[start:end]


def needles(value: str) -> list[Needle]:
    """value as it is, and in the forms an encoded leak would take."""
    plain = value.strip()
    found = []
    escaped = json.dumps(plain)[1:-1]
    if escaped != plain:
        found.append(Needle("JSON-escaped", escaped))
    for form, core in _base64_cores(plain.encode()):
        found.append(Needle(form, core))
    for match in _PEM.finditer(value):
        body = match.group(2)
        lines = [line.strip() for line in body.splitlines() if len(line.strip()) >= MIN_PEM_LINE]
        found.extend(Needle(f"PEM body line {i + 1}", line) for i, line in enumerate(lines))
        joined = "".join(body.split())
        found.append(Needle("PEM body, re-wrapped", joined, squeezed=True))
        try:
            der = base64.b64decode(joined)
        except binascii.Error:
            continue
        found.append(Needle("DER", der.decode("latin-1")))
    # Keep each needle once, and no derived one short enough to match by chance.
    kept: dict[tuple[str, bool], Needle] = {(plain, False): Needle("plain", plain)}
    for needle in found:
        if len(needle.text) >= MIN_NEEDLE:
            kept.setdefault((needle.text, needle.squeezed), needle)
    return list(kept.values())


# -- scanning ------------------------------------------------------------------------------


def _squeeze(text: str) -> str:
    return re.sub(r"\s+|\\n|\\r", "", text)


def scan(secrets: Iterable[SecretValue], places: Iterable[Place]) -> list[Finding]:
    """Each place holding each secret, in the first form found there."""
    prepared = [(s, s.needles()) for s in unique(secrets)]
    findings: dict[tuple[str, str], Finding] = {}
    for place in places:
        squeezed = None
        for secret, forms in prepared:
            if (secret.value, place.where) in findings:
                continue
            for needle in forms:
                if needle.squeezed:
                    squeezed = _squeeze(place.text) if squeezed is None else squeezed
                    hit = needle.text in squeezed
                else:
                    hit = needle.text in place.text
                if hit:
                    findings[(secret.value, place.where)] = Finding(
                        secret, needle.form, place.where, place.step
                    )
                    break
    return list(findings.values())


def secret_shaped(places: Iterable[Place]) -> list[Place]:
    """Places that look like a secret whatever the values: a PEM private key, or a mapping
    key naming something private. For a charm that should hold no secret at all."""
    return [
        p
        for p in places
        if "PRIVATE KEY-----" in p.text or (p.where.endswith(" (key)") and is_secret_entry(p.text, ""))
    ]


def leaks(findings: Iterable[Finding], allowed: Iterable[Allowed]) -> list[Finding]:
    rules = list(allowed)
    return [f for f in findings if not any(rule.covers(f) for rule in rules)]


def flatten(where: str, value: Any, step: str = "") -> Iterator[Place]:
    """Every string in value (dict keys too), each at its path."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield Place(f"{where} (key)", str(key), step)
            yield from flatten(f"{where}.{key}", item, step)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        for i, item in enumerate(items):
            yield from flatten(f"{where}[{i}]", item, step)
    elif isinstance(value, bytes):
        yield Place(where, value.decode("latin-1"), step)
    elif isinstance(value, str):
        yield Place(where, value, step)
    elif hasattr(value, "to_dict"):  # Pebble layers, plans, checks; lightkube objects
        yield from flatten(where, value.to_dict(), step)
    elif isinstance(value, ops.StatusBase):
        yield Place(where, f"{value.name}: {value.message}", step)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield from flatten(where, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, step)
    elif value is not None and not isinstance(value, (bool, int, float)):
        yield Place(where, str(value), step)


def files(root: Path, where: str, step: str = "") -> Iterator[Place]:
    """Every file under root (following the symlinks ops.testing makes for mounts), read
    whole. Its path is scanned as well."""
    seen: set[str] = set()
    for top, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in sorted(names):
            path = Path(top) / name
            inside = "/" + str(path.relative_to(root))
            yield Place(f"{where} path", inside, step)
            try:
                yield Place(f"{where} file {inside}", path.read_bytes().decode("latin-1"), step)
            except OSError:
                continue


# -- what a charm produced ------------------------------------------------------------------


@dataclasses.dataclass
class KubeWrite:
    verb: str
    kind: str
    namespace: str
    name: str
    body: Any


class Capture:
    """While installed, every push, layer and exec through ops.Container and every body sent
    to a FakeKube (apply, patch) or a FakeCluster (apply_patch), in order."""

    def __init__(self) -> None:
        self.pushes: list[tuple[str, str, Any]] = []  # (container, path, content)
        self.layers: list[tuple[str, str, Any]] = []  # (container, label, layer)
        self.execs: list[tuple[str, dict[str, Any]]] = []  # (container, call)
        self.kube: list[KubeWrite] = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[Capture]:
        with contextlib.ExitStack() as stack:
            for owner, name, wrapper in (
                (ops.Container, "push", self._push),
                (ops.Container, "add_layer", self._add_layer),
                (ops.Container, "exec", self._exec),
                (FakeKube, "apply", self._apply),
                (FakeKube, "patch", self._patch),
                (FakeCluster, "apply_patch", self._apply_patch),
            ):
                stack.enter_context(mock.patch.object(owner, name, wrapper(getattr(owner, name))))
            yield self

    def _push(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def push(container: ops.Container, path: Any, source: Any, *args: Any, **kwargs: Any) -> Any:
            if hasattr(source, "read"):
                source = source.read()  # a stream is read once: hand on what was read
            self.pushes.append((container.name, str(path), source))
            return original(container, path, source, *args, **kwargs)

        return push

    def _add_layer(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def add_layer(container: ops.Container, label: str, layer: Any, *args: Any, **kwargs: Any) -> Any:
            shown = layer if isinstance(layer, (str, dict)) else layer.to_dict()
            self.layers.append((container.name, label, copy.deepcopy(shown)))
            return original(container, label, layer, *args, **kwargs)

        return add_layer

    def _exec(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def exec_(container: ops.Container, command: Any, *args: Any, **kwargs: Any) -> Any:
            self.execs.append((container.name, {"command": list(command), **copy.deepcopy(kwargs)}))
            return original(container, command, *args, **kwargs)

        return exec_

    def _apply(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def apply(kube: FakeKube, obj: Any, *args: Any, **kwargs: Any) -> Any:
            body = obj.to_dict() if hasattr(obj, "to_dict") else copy.deepcopy(obj)
            meta = body.get("metadata") or {}
            self.kube.append(
                KubeWrite(
                    "apply", body.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""), body
                )
            )
            return original(kube, obj, *args, **kwargs)

        return apply

    def _patch(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def patch(kube: FakeKube, res: Any, name: str, obj: Any, *args: Any, **kwargs: Any) -> Any:
            kind = res._api_info.resource.kind
            self.kube.append(
                KubeWrite("patch", kind, kwargs.get("namespace") or "", name, copy.deepcopy(obj))
            )
            return original(kube, res, name, obj, *args, **kwargs)

        return patch

    def _apply_patch(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def apply_patch(cluster: FakeCluster, kind: Any, name: str, namespace: Any, body: Any) -> Any:
            self.kube.append(KubeWrite("patch", kind.__name__, namespace or "", name, copy.deepcopy(body)))
            return original(cluster, kind, name, namespace, body)

        return apply_patch

    def mark(self) -> tuple[int, int, int, int]:
        """How much was recorded so far: `places(since=...)` gives only what came after."""
        return len(self.pushes), len(self.layers), len(self.execs), len(self.kube)

    def places(self, since: tuple[int, int, int, int] = (0, 0, 0, 0), step: str = "") -> Iterator[Place]:
        pushes, layers, execs, kube = since
        for container, path, content in self.pushes[pushes:]:
            yield Place(f"container {container} pushed path", path, step)
            yield from flatten(f"container {container} pushed {path}", content, step)
        for container, label, layer in self.layers[layers:]:
            yield from flatten(f"container {container} layer {label}", layer, step)
        for container, call in self.execs[execs:]:
            yield from flatten(f"container {container} exec", call, step)
        for write in self.kube[kube:]:
            where = f"kube {write.verb} {write.kind} {write.namespace}/{write.name}"
            yield from flatten(where, write.body, step)

    def secret_values(self) -> list[SecretValue]:
        """The secret entries of every Secret the charm sent to Kubernetes."""
        return kubernetes_secret_values(w.body for w in self.kube if isinstance(w.body, Mapping))


def state_places(ctx: testing.Context[Any], state: testing.State, step: str = "") -> Iterator[Place]:
    """What one output state holds that the charm could have written."""
    for relation in state.relations:
        where = f"relation {relation.endpoint}#{relation.id}"
        for field in (
            "local_app_data",
            "local_unit_data",
            "remote_app_data",
            "remote_units_data",
            "peers_data",
        ):
            if hasattr(relation, field):
                yield from flatten(f"{where} {field}", getattr(relation, field), step)
    yield from flatten("config", dict(state.config), step)
    for stored in state.stored_states:
        yield from flatten(f"stored-state {stored.owner_path}.{stored.name}", dict(stored.content), step)
    yield from flatten("unit status", state.unit_status, step)
    yield from flatten("app status", state.app_status, step)
    yield from flatten("workload version", state.workload_version, step)
    for secret in state.secrets:
        label = secret.label or secret.id
        yield from flatten(f"juju-secret {label} content", secret.latest_content, step)
        yield from flatten(f"juju-secret {label} tracked", secret.tracked_content, step)
        yield from flatten(f"juju-secret {label} description", secret.description, step)
    for container in state.containers:
        for label, layer in container.layers.items():
            yield from flatten(f"container {container.name} layer {label}", layer, step)
        yield from flatten(f"container {container.name} plan", container.plan, step)
        root = container.get_filesystem(ctx)
        if root.exists():
            yield from files(root, f"container {container.name}", step)


def context_places(ctx: testing.Context[Any], step: str = "") -> Iterator[Place]:
    """What a Context kept of every run so far (logs, statuses, action output, execs)."""
    for i, line in enumerate(ctx.juju_log):
        yield Place(f"juju-log[{i}] {line.level}", line.message, step)
    yield from flatten("unit status history", list(ctx.unit_status_history), step)
    yield from flatten("app status history", list(ctx.app_status_history), step)
    yield from flatten("workload version history", list(ctx.workload_version_history), step)
    yield from flatten("action results", dict(ctx.action_results or {}), step)
    yield from flatten("action logs", list(ctx.action_logs), step)
    for container, calls in ctx.exec_history.items():
        for i, call in enumerate(calls):
            yield from flatten(f"container {container} exec history[{i}]", call, step)


def log_places(records: Iterable[Any]) -> Iterator[Place]:
    """Python log records (pytest's caplog.records), message and traceback."""
    for i, record in enumerate(records):
        yield Place(f"log[{i}] {record.name} {record.levelname}", record.getMessage())
        if record.exc_text:
            yield Place(f"log[{i}] {record.name} traceback", record.exc_text)


def kube_places(objects: Iterable[Mapping[str, Any]], step: str = "") -> Iterator[Place]:
    """The objects a fake cluster holds now (FakeKube.objects.values(), a FakeCluster's
    StatefulSet and pods)."""
    for obj in objects:
        meta = obj.get("metadata") or {}
        where = f"kube object {obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"
        yield from flatten(where, obj, step)


class Sweep:
    """A charm's scenario run step by step, each output state kept, each action failure's
    message too (and the scenario carries on from the failure's state). Steps are named
    `<name> step <n>: <event>`; `objects` gives what the fake cluster holds, read after each
    step."""

    def __init__(
        self,
        ctx: testing.Context[Any],
        capture: Capture,
        *,
        name: str = "",
        objects: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
    ):
        self.ctx = ctx
        self.capture = capture
        self.name = name
        self.objects = objects
        self.inputs: list[testing.State] = []
        self.steps: list[tuple[str, testing.State]] = []
        self.failures: list[tuple[str, str]] = []
        self._places: list[Place] = []
        self._seen: set[tuple[str, str]] = set()

    def run(self, event: Any, state: testing.State) -> testing.State:
        step = f"{self.name} step " if self.name else ""
        step += f"{len(self.steps) + 1}: {getattr(event, 'name', event)}"
        action = getattr(event, "action", None)
        if action is not None:
            step += f" {action.name}"
        self.inputs.append(state)
        mark = self.capture.mark()
        try:
            out = self.ctx.run(event, state)
        except testing.ActionFailed as exc:
            self.failures.append((step, exc.message))
            if not isinstance(exc.state, testing.State):
                raise
            out = exc.state
        self.steps.append((step, out))
        # Files and context output as they were after this step: a later step may remove them.
        for place in (
            *state_places(self.ctx, out, step),
            *context_places(self.ctx, step),
            *self.capture.places(mark, step),
            *(kube_places(self.objects(), step) if self.objects else ()),
        ):
            if (place.where, place.text) not in self._seen:
                self._seen.add((place.where, place.text))
                self._places.append(place)
        return out

    def secret_values(self, *objects: Iterable[Mapping[str, Any]]) -> list[SecretValue]:
        """Every secret the scenario made or handed the charm: in any state's Juju secrets,
        in every Secret the charm sent, in the Secrets among `objects` (the cluster's). A
        value is named after the first place it was seen: what the charm was given comes
        before a copy it made."""
        states = [s for pair in zip(self.inputs, (out for _, out in self.steps), strict=True) for s in pair]
        found = [v for state in states for v in juju_secret_values(state)]
        found += self.capture.secret_values()
        for group in objects:
            found += kubernetes_secret_values(group)
        return unique(found)

    def places(self, *extra: Iterable[Place]) -> list[Place]:
        """Every place of every step (what the capture saw included) and `extra` (logs,
        objects)."""
        out = list(self._places)
        out += [
            Place(f"action failure [{i}]", message, step) for i, (step, message) in enumerate(self.failures)
        ]
        for group in extra:
            out += group
        return out


# -- the controller's REST credentials, as a related charm receives them ------------------------

CONTROLLER_NAMESPACE = "l2sm"
CONTROLLER_APP = "l2sm-controller"


def granted_credentials(juju_version: str, kube: FakeKube) -> tuple[testing.Secret | None, str]:
    """Fresh credentials where that Juju keeps them, and the reference the relation carries:
    a Juju secret granted to the relation (3.x, returned), or an entry of the controller's own
    Kubernetes Secret (2.9, put in `kube`; None returned)."""
    from l2sm_controlplane.objects import charm_secret

    content = {"username": f"user-{token_hex(4)}", "password": token_urlsafe(24)}
    if juju_version.startswith("2."):
        made = charm_secret(CONTROLLER_APP, CONTROLLER_NAMESPACE, {"controller-credentials": content})
        kube.add(made)
        return None, f"kubernetes:{CONTROLLER_NAMESPACE}/{made['metadata']['name']}"
    granted = testing.Secret(tracked_content=content)  # the controller's, granted to the relation
    return granted, granted.id


def credential_places(granted: testing.Secret | None) -> list[Allowed]:
    """Where those credentials may be seen: the controller's store, which the charm never writes."""
    if granted is not None:
        return [
            Allowed(f"juju-secret {granted.id} *", "the controller's Juju secret, granted to the relation")
        ]
    return [
        Allowed(
            f"kube object Secret {CONTROLLER_NAMESPACE}/{CONTROLLER_APP}-secrets.data.*",
            "the controller's own Secret (Juju 2.9), which this charm never writes",
        )
    ]
