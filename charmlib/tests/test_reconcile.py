"""The shared charm plumbing, through a minimal charm defined here."""

import json

import ops
import pydantic
import pytest
from ops import testing

from l2sm_charmlib import reconcile
from l2sm_testing.samples import CONTROLLER_APP_DATA

META = {
    "name": "probe",
    "requires": {"controller": {"interface": "l2sm_controller"}},
}
CONFIG = {"options": {"size": {"type": "int", "default": 3}}}


class Size(pydantic.BaseModel):
    size: int = pydantic.Field(3, ge=1, le=5)


class Probe(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.status = reconcile.DispatchStatus(self._assess)
        framework.observe(self.on.config_changed, self._on_config)
        framework.observe(self.on.collect_unit_status, self._on_collect)

    def _assess(self):
        try:
            size = reconcile.load_config(self, Size)
            data = reconcile.controller_data(self, "controller")
        except reconcile.Blocked as exc:
            return ops.BlockedStatus(str(exc))
        except reconcile.Waiting as exc:
            return ops.WaitingStatus(str(exc))
        return ops.ActiveStatus(f"{size.size} via {data.cluster_ip}")

    def _on_config(self, _):
        if self.config.get("size") == 4:
            self.status.blocked_by = "four is refused while acting"

    def _on_collect(self, event):
        event.add_status(self.status.get())


def run(config=None, data=None, related=True):
    ctx = testing.Context(Probe, meta=META, config=CONFIG)
    relations = set()
    if related:
        raw = {k: json.dumps(v) for k, v in (data if data is not None else CONTROLLER_APP_DATA).items()}
        relations = {testing.Relation("controller", remote_app_data=raw)}
    return ctx.run(
        ctx.on.config_changed(), testing.State(config=config or {}, relations=relations)
    ).unit_status


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, testing.ActiveStatus("3 via 10.152.183.20")),
        (
            {"config": {"size": 9}},
            testing.BlockedStatus("option 'size': Input should be less than or equal to 5"),
        ),
        ({"config": {"size": 4}}, testing.BlockedStatus("four is refused while acting")),
        (
            {"related": False},
            testing.BlockedStatus(
                "integrate with l2sm-controller: juju integrate probe:controller l2sm-controller"
            ),
        ),
        ({"data": {}}, testing.WaitingStatus("waiting for the controller to publish its address")),
        (
            {"data": CONTROLLER_APP_DATA | {"ready": False}},
            testing.WaitingStatus("waiting for the controller to be ready"),
        ),
    ],
)
def test_statuses(kwargs, status):
    assert run(**kwargs) == status


def test_bad_controller_data_names_the_field():
    status = run(data=CONTROLLER_APP_DATA | {"openflow-port": 0})
    assert status.name == "blocked"
    assert status.message.startswith("controller relation data: field 'openflow-port'")
