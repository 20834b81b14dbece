"""Relation data, both ways: one encoding for what a charm writes, and readers that name the
field when what the other side wrote does not fit the schema."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import ops
import pydantic

from l2sm_core.validation import clip, describe_validation_error

M = TypeVar("M", bound=pydantic.BaseModel)


class Databag(pydantic.BaseModel):
    """Base of every interface schema: fields by their dashed aliases, unknown keys (Juju's
    own, a newer peer's) ignored."""

    model_config = pydantic.ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


def canonical_json(value: Any) -> str:
    """The one way this project writes a databag value: sorted keys, so the same content is
    always the same bytes and a reconcile that changes nothing wakes no one (Juju fires
    relation-changed on any byte change)."""
    return json.dumps(value, sort_keys=True)


def encode(data: pydantic.BaseModel) -> dict[str, str]:
    """The databag `relation.save(data, ..., encoder=canonical_json)` writes: ops dumps the
    model in JSON mode, by alias, one key per field."""
    return {key: canonical_json(value) for key, value in data.model_dump(mode="json", by_alias=True).items()}


class InvalidDatabag(ValueError):
    """What the other side of a relation wrote does not fit the schema: the message names
    each bad field (a value that is not JSON, or one the schema refuses)."""


def load_databag(relation: ops.Relation, cls: type[M], entity: ops.Unit | ops.Application) -> M:
    """`relation.load(cls, entity)`, but every way remote data can be wrong (not JSON, wrong
    type, refused by a validator) is an InvalidDatabag naming the field."""
    databag = relation.data[entity]
    # The schema's keys only: Juju's own keys (ingress-address, ...) are plain strings.
    known = {field.alias or name for name, field in cls.model_fields.items()}
    # Checked key by key first: json.loads alone would not say which field is not JSON.
    not_json = []
    for key, raw in databag.items():
        if key not in known:
            continue
        try:
            json.loads(raw)
        except (ValueError, RecursionError):
            not_json.append(f"field '{clip(key, 64)}': not JSON")
    if not_json:
        raise InvalidDatabag("; ".join(not_json))
    try:
        return relation.load(cls, entity)
    except pydantic.ValidationError as exc:
        raise InvalidDatabag(describe_validation_error(exc, "field")) from None
    except (TypeError, RecursionError) as exc:
        raise InvalidDatabag(f"unreadable data: {clip(str(exc), 120)}") from None


def decode(databag: Mapping[str, str], cls: type[M], *, ignore: Iterable[str] = ()) -> M:
    """A written databag (e.g. from a test's output state) read back strictly: every key is
    the schema's (or in `ignore`, e.g. Juju's own), every value JSON in the one encoding, the
    whole valid. Anything else is an InvalidDatabag naming the key."""
    known = {field.alias or name for name, field in cls.model_fields.items()}
    outside = sorted(set(databag) - known - set(ignore))
    if outside:
        raise InvalidDatabag(f"keys outside the schema: {', '.join(clip(k, 64) for k in outside)}")
    values = {}
    for key in sorted(known & set(databag)):
        try:
            values[key] = json.loads(databag[key])
        except (ValueError, RecursionError):
            raise InvalidDatabag(f"field '{clip(key, 64)}': not JSON") from None
        if canonical_json(values[key]) != databag[key]:
            raise InvalidDatabag(f"field '{clip(key, 64)}': not written as canonical_json writes it")
    try:
        return cls.model_validate(values)
    except pydantic.ValidationError as exc:
        raise InvalidDatabag(describe_validation_error(exc, "field")) from None
