import pytest

from l2sm_core import vnets
from l2sm_core.resync import (
    AddPorts,
    CreateNetwork,
    DesiredState,
    RemovePorts,
    apply_resync,
    plan_resync,
)
from l2sm_core.vnets import VnetsClient

A1 = "of:e5e40be8c6b4bf54/1"
A2 = "of:e5e40be8c6b4bf54/2"
B1 = "of:cc4d87e0ca1f6b49/1"


def test_plan_orders_and_filters():
    desired = DesiredState.build(
        networks=["net-b", "net-a"],
        ports={"net-a": [A2, A1], "net-b": [], "ghost": [B1]},
        released={"net-a": [A1, B1], "gone": [A2]},
    )
    plan = plan_resync(desired)
    assert plan.calls == (
        CreateNetwork("net-a"),
        CreateNetwork("net-b"),
        AddPorts("net-a", (A1, A2)),
        # A1 is wanted again, so only B1 is released; "gone" is not a network any more.
        RemovePorts("net-a", (B1,)),
    )
    assert plan.orphans == {"ghost": frozenset({B1})}


def test_plan_refuses_malformed_endpoints():
    with pytest.raises(ValueError, match="not a switch port"):
        plan_resync(DesiredState.build(networks=["n"], ports={"n": ["of:xyz/1"]}))
    with pytest.raises(ValueError, match="not a switch port"):
        plan_resync(DesiredState.build(networks=["n"], released={"n": ["bad"]}))


def test_restart_is_repaired(controller):
    client = VnetsClient(controller.url, "karaf", "karaf")
    desired = DesiredState.build(networks=["net-a", "net-b"], ports={"net-a": [A1, B1], "net-b": [A2]})
    first = apply_resync(client, plan_resync(desired))
    assert sorted(first.networks_recreated) == ["net-a", "net-b"]
    assert controller.networks == {"net-a": {A1, B1}, "net-b": {A2}}

    # Nothing lost: running again changes nothing and repairs nothing.
    again = apply_resync(client, plan_resync(desired))
    assert not again.repaired
    assert sorted(again.networks_present) == ["net-a", "net-b"]
    assert controller.networks == {"net-a": {A1, B1}, "net-b": {A2}}

    controller.restart()
    assert controller.networks == {}
    report = apply_resync(client, plan_resync(desired))
    assert report.repaired
    assert sorted(report.networks_recreated) == ["net-a", "net-b"]
    assert (report.ports_restored, report.ports_confirmed) == (3, 0)
    assert again.ports_confirmed == 3
    assert controller.networks == {"net-a": {A1, B1}, "net-b": {A2}}
    assert report.summary().startswith("2 network(s) recreated with 3 port(s), 0 already present")


def test_released_ports_removed_idempotently(controller):
    client = VnetsClient(controller.url, "karaf", "karaf")
    client.create_network("net-a")
    client.add_ports("net-a", [A1, A2])
    desired = DesiredState.build(networks=["net-a"], ports={"net-a": [A1]}, released={"net-a": [A2]})
    report = apply_resync(client, plan_resync(desired))
    assert controller.networks["net-a"] == {A1}
    assert report.ports_removed == 1
    # Removing again is harmless: upstream's 500 for an absent port counts as already gone.
    again = apply_resync(client, plan_resync(desired))
    assert controller.networks["net-a"] == {A1}
    assert (again.ports_removed, again.ports_already_absent) == (0, 1)
    assert "already absent" in again.summary()


def test_released_ports_skipped_on_recreated_network(controller):
    client = VnetsClient(controller.url, "karaf", "karaf")
    desired = DesiredState.build(networks=["net-a"], ports={"net-a": [A1]}, released={"net-a": [A2]})
    report = apply_resync(client, plan_resync(desired))
    assert report.networks_recreated == ["net-a"]
    assert (report.ports_removed, report.ports_already_absent) == (0, 0)
    assert not [r for r in controller.requests if r[0] == "DELETE"]


def test_refusals_are_reported_not_fatal(controller):
    client = VnetsClient(controller.url, "karaf", "karaf")
    plan = plan_resync(DesiredState.build(networks=["net-a"], ports={"ghost": [A1]}))
    controller.refuse_create.add("net-a")
    report = apply_resync(client, plan)
    assert report.failures and "create net-a" in report.failures[0]
    assert "ghost" in report.summary() and "1 failure(s)" in report.summary()


def test_unreachable_aborts(controller):
    client = VnetsClient(controller.url, "karaf", "wrong")
    with pytest.raises(vnets.ControllerUnauthorized):
        apply_resync(client, plan_resync(DesiredState.build(networks=["net-a"])))
