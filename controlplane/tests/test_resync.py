"""The resync against the controller double, which keeps ports as upstream does: a list
with repeats, and one record per port of the network it is in."""

import pytest

from l2sm_controlplane import vnets
from l2sm_controlplane.resync import (
    DesiredState,
    HeldState,
    PodPorts,
    ResyncReport,
    apply_resync,
    desired_from_pods,
    forget_deleted,
    plan_resync,
    read_held,
    resync_cluster,
)
from l2sm_controlplane.vnets import VnetsClient

A1 = "of:e5e40be8c6b4bf54/1"
A2 = "of:e5e40be8c6b4bf54/2"
A3 = "of:e5e40be8c6b4bf54/3"
B1 = "of:cc4d87e0ca1f6b49/1"


def client_for(controller, password="karaf"):
    return VnetsClient(controller.url, "karaf", password)


def resync(controller, desired):
    client = client_for(controller)
    return apply_resync(client, plan_resync(desired, read_held(client, desired.networks)))


def test_plan_is_pure_and_ordered():
    desired = DesiredState.build(
        networks=["net-b", "net-a", "net-c"],
        ports={"net-a": [A2, A1], "net-b": [B1], "ghost": [A3]},
        released={"net-a": [A3, A1], "gone": [A2]},
    )
    held = HeldState(ports={"net-a": (A1, A3), "net-b": (B1,)}, absent=frozenset({"net-c"}))
    plan = plan_resync(desired, held)
    by_name = {p.network: p for p in plan.networks}
    # A1 is wanted again (a pod recreated onto the same interface), so only A3 goes.
    assert (by_name["net-a"].add, by_name["net-a"].remove, by_name["net-a"].confirmed) == ((A2,), (A3,), 1)
    assert not by_name["net-b"].writes and by_name["net-b"].confirmed == 1
    assert by_name["net-c"].recreate and by_name["net-c"].keep == ()
    assert plan.orphans == {"ghost": frozenset({A3})}


def test_plan_refuses_malformed_endpoints():
    with pytest.raises(ValueError, match="not a switch port"):
        plan_resync(DesiredState.build(networks=["n"], ports={"n": ["of:xyz/1"]}), HeldState())
    with pytest.raises(ValueError, match="not a switch port"):
        plan_resync(DesiredState.build(networks=["n"], released={"n": ["bad"]}), HeldState())


def test_restart_is_repaired_and_held_ports_are_never_posted_again(controller):
    desired = DesiredState.build(networks=["net-a", "net-b"], ports={"net-a": [A1, B1], "net-b": [A2]})
    first = resync(controller, desired)
    assert sorted(first.networks_recreated) == ["net-a", "net-b"]
    assert controller.networks == {"net-a": [B1, A1], "net-b": [A2]}

    # Nothing lost: running again reads each network once and writes nothing.
    before = len(controller.requests)
    again = resync(controller, desired)
    assert not again.repaired
    assert controller.requests[before:] == [
        ("GET", "/onos/vnets/api/net-a", None),
        ("GET", "/onos/vnets/api/net-b", None),
    ]
    assert (again.ports_confirmed, again.ports_added) == (3, 0)
    assert controller.networks == {"net-a": [B1, A1], "net-b": [A2]}
    assert "3 port(s) confirmed, 0 added" in again.summary()

    controller.restart()
    report = resync(controller, desired)
    assert report.repaired
    assert (report.ports_restored, report.ports_confirmed) == (3, 0)
    assert controller.networks == {"net-a": [B1, A1], "net-b": [A2]}
    assert report.summary().startswith("2 network(s) recreated with 3 port(s), 0 already present")


def test_only_missing_ports_are_added(controller):
    controller.hold("net-a", A1)
    report = resync(controller, DesiredState.build(networks=["net-a"], ports={"net-a": [A1, A2]}))
    assert controller.networks["net-a"] == [A1, A2]
    assert (report.ports_added, report.ports_confirmed) == (1, 1)
    assert report.repaired


def test_released_ports_removed_once(controller):
    controller.hold("net-a", A1, A2)
    desired = DesiredState.build(networks=["net-a"], ports={"net-a": [A1]}, released={"net-a": [A2]})
    report = resync(controller, desired)
    assert controller.networks["net-a"] == [A1]
    assert controller.learned("net-a") == [A1]
    assert report.ports_removed == 1 and not report.repaired
    # Gone already: nothing is sent (upstream would answer 500 for it).
    before = len(controller.writes())
    again = resync(controller, desired)
    assert len(controller.writes()) == before
    assert again.ports_removed == 0


def test_duplicated_port_is_rebuilt_to_one_learned_copy(controller):
    # What earlier resyncs did upstream: each re-post appended another copy.
    controller.hold("net-a", A1, A2, A1, A1)
    report = resync(controller, DesiredState.build(networks=["net-a"], ports={"net-a": [A1, A2]}))
    assert controller.networks["net-a"] == [A1, A2]
    # DELETE /port would have left the last copy without its record: not forwarded for.
    assert controller.learned("net-a") == [A1, A2]
    assert report.networks_rebuilt == {"net-a": f"held more than once: {A1}"}
    assert report.repaired
    assert "1 network(s) rebuilt" in report.summary()


def test_copy_left_by_a_departed_pod_is_taken_out_of_the_old_network(controller):
    # The breach: net-a kept a copy of A1 after its pod left; A1 now serves a pod
    # of net-b. Any call taking the copy out drops A1's one record, so both are rebuilt.
    controller.hold("net-a", A2, A1)
    controller.hold("net-b", A1)
    desired = DesiredState.build(networks=["net-a", "net-b"], ports={"net-a": [A2], "net-b": [A1]})
    report = resync(controller, desired)
    assert controller.networks == {"net-a": [A2], "net-b": [A1]}
    assert controller.learned("net-a") == [A2] and controller.learned("net-b") == [A1]
    assert sorted(report.networks_rebuilt) == ["net-a", "net-b"]
    # Both were deleted before anything else was sent.
    # Both were deleted before anything else was sent, the one keeping A1 first.
    sent = [(method, path.rsplit("/", 1)[-1]) for method, path, _ in controller.writes()]
    assert sent[:2] == [("DELETE", "net-b"), ("DELETE", "net-a")]


def test_an_interruption_never_leaves_a_port_without_its_record(controller):
    # Finding from review: the run aborted (ONOS timeout) between removing a stale copy and
    # rebuilding the network sharing its record left that network looking healthy forever.
    controller.hold("net-a", A2, A1)
    controller.hold("net-b", A1)
    desired = DesiredState.build(networks=["net-a", "net-b"], ports={"net-a": [A2], "net-b": [A1]})
    for calls in range(20):
        controller.restart()
        controller.requests.clear()
        controller.hold("net-a", A2, A1)
        controller.hold("net-b", A1)
        controller.fail_after(calls)  # the controller stops answering after this many writes
        try:
            resync(controller, desired)
        except vnets.ControllerUnreachable:
            finished = False
        else:
            finished = True
        controller.fail_after(None)
        # Whatever was done, the next resync sees it: it has work to do, or every wanted
        # port is held and forwarded for. Never a healthy-looking network missing a record.
        client = VnetsClient(controller.url, "karaf", "karaf")
        plan = plan_resync(desired, read_held(client, desired.networks))
        healthy = all(controller.learned(n) == sorted(desired.ports.get(n, ())) for n in desired.networks)
        assert plan.writes or healthy, calls
        resync(controller, desired)
        assert controller.networks == {"net-a": [A2], "net-b": [A1]}
        assert controller.learned("net-a") == [A2] and controller.learned("net-b") == [A1]
        if finished:  # every point of interruption was tried
            assert calls > 3
            break
    else:
        pytest.fail("the resync never finished")


def test_stale_port_without_record_is_rebuilt_out(controller):
    controller.hold("net-a", A1, A2)
    del controller.port_network[A2]  # the manager's own delete took the record, not the copy
    desired = DesiredState.build(networks=["net-a"], ports={"net-a": [A1]}, released={"net-a": [A2]})
    report = resync(controller, desired)
    assert controller.networks["net-a"] == [A1]
    assert controller.learned("net-a") == [A1]
    assert "could not remove" in report.networks_rebuilt["net-a"]


def test_unexplained_ports_are_left_alone(controller):
    controller.hold("net-a", A1, A3)  # A3: no pod we know of (an edge device, or a race)
    report = resync(controller, DesiredState.build(networks=["net-a"], ports={"net-a": [A1]}))
    assert controller.networks["net-a"] == [A1, A3]
    assert report.unexplained == {"net-a": [A3]}
    assert f"left alone: net-a: {A3}" in report.summary()


@pytest.mark.parametrize(
    "garbled",
    [
        "",
        "Id: net-a\nEndpoints: \n -of:e5e40be8c6b4bf54/1\n",  # cut short
        "Id: net-b\nEndpoints: \nTunnel Ids: \nMirror Port: null\n",  # another network
        "Id: net-a\nEndpoints: \n -eth0\nTunnel Ids: \nMirror Port: null\n",
        "Id: net-a\nEndpoints: \n -of:E5E40BE8C6B4BF54/1\nTunnel Ids: \n -1\nMirror Port: null\n",
        "Id: net-a\nEndpoints: \nTunnel Ids: \n -x\nMirror Port: null\n",
        "Id: net-a\nEndpoints: \nTunnel Ids: \nMirror Port: null\nextra\n",
        "Id: net-a\nEndpoints: \nTunnel Ids: \nMirror Port: somewhere\n",
        "<html>proxy error</html>",
    ],
)
def test_unreadable_answer_posts_nothing(controller, garbled):
    controller.hold("net-a")
    controller.garbled["net-a"] = garbled
    report = resync(controller, DesiredState.build(networks=["net-a"], ports={"net-a": [A1]}))
    assert controller.writes() == []
    assert report.failures and report.failures[0].startswith("read net-a: network net-a: cannot read")
    assert not report.repaired


def test_refusals_are_reported_not_fatal(controller):
    controller.refuse_create.add("net-a")
    report = resync(controller, DesiredState.build(networks=["net-a", "net-b"], ports={"ghost": [A1]}))
    assert report.failures and "create net-a" in report.failures[0]
    assert report.networks_recreated == ["net-b"]
    assert "ghost" in report.summary() and "1 failure(s)" in report.summary()


def test_a_network_gone_between_read_and_write_is_a_failure(controller, monkeypatch):
    controller.hold("net-a")
    client = client_for(controller)
    desired = DesiredState.build(networks=["net-a"], ports={"net-a": [A1]})
    plan = plan_resync(desired, read_held(client, desired.networks))
    controller.networks.pop("net-a")
    report = apply_resync(client, plan)
    assert report.failures and "add 1 port(s) to net-a" in report.failures[0]


def test_failed_rebuild_delete_adds_nothing(controller, monkeypatch):
    controller.hold("net-a", A1, A1)
    client = client_for(controller)
    desired = DesiredState.build(networks=["net-a"], ports={"net-a": [A1]})
    plan = plan_resync(desired, read_held(client, desired.networks))

    def refuse(name):
        raise vnets.ControllerResponseError("500")

    monkeypatch.setattr(client, "delete_network", refuse)
    report = apply_resync(client, plan)
    assert controller.networks["net-a"] == [A1, A1]  # not a third copy
    assert "delete net-a to rebuild it" in report.failures[0]


def test_unreachable_aborts(controller):
    with pytest.raises(vnets.ControllerUnauthorized):
        read_held(client_for(controller, password="wrong"), ["net-a"])
    controller.hold("net-a", A1)
    client = client_for(controller)
    plan = plan_resync(
        DesiredState.build(networks=["net-a"], released={"net-a": [A1]}), read_held(client, ["net-a"])
    )
    with pytest.raises(vnets.ControllerUnauthorized):
        apply_resync(client_for(controller, password="wrong"), plan)


def test_a_port_the_operator_removed_meanwhile_needs_no_rebuild(controller):
    # Read, then the operator detaches a deleted pod's port, then the resync's DELETE /port
    # fails: a look again shows it gone, so nothing is rebuilt and nobody's traffic stops.
    controller.hold("net-a", A1, A2)
    desired = DesiredState.build(networks=["net-a"], ports={"net-a": [A1]}, released={"net-a": [A2]})
    client = VnetsClient(controller.url, "karaf", "karaf")
    plan = plan_resync(desired, read_held(client, desired.networks))
    controller.networks["net-a"].remove(A2)
    del controller.port_network[A2]
    report = apply_resync(client, plan)
    assert controller.networks == {"net-a": [A1]} and controller.learned("net-a") == [A1]
    assert report.networks_rebuilt == {} and report.failures == []
    assert [m for m, _, _ in controller.writes()] == ["DELETE"]  # the one refused removal


def test_no_rebuild_blind_when_the_second_look_cannot_be_read(controller):
    controller.hold("net-a", A1, A2)
    desired = DesiredState.build(networks=["net-a"], ports={"net-a": [A1]}, released={"net-a": [A2]})
    client = VnetsClient(controller.url, "karaf", "karaf")
    plan = plan_resync(desired, read_held(client, desired.networks))
    del controller.port_network[A2]  # the removal will be refused (no record)
    controller.garbled["net-a"] = "<html>proxy error</html>"  # and the second look unreadable
    report = apply_resync(client, plan)
    assert [m for m, _, _ in controller.writes()] == ["DELETE"]  # the refused removal only
    assert report.networks_rebuilt == {}
    assert any(f.startswith("read net-a again") for f in report.failures)


# -- the whole round: pods to desired state, the charm's order, networks deleted meanwhile ------


def test_desired_from_pods_releases_gone_pods_and_sets_young_ones_apart():
    pods = [
        PodPorts("old-0", {"net-a": [A1], "net-b": [B1]}),
        PodPorts("new-0", {"net-a": [A2]}, young=True),  # neither wanted nor released
        PodPorts("gone-0", {"net-a": [A3]}, gone=True, young=True),  # released however young
        PodPorts("going-0", {"net-b": [A1]}, gone=True),
    ]
    desired, young = desired_from_pods(["net-a", "net-b"], pods)
    assert desired.networks == {"net-a", "net-b"}
    assert desired.ports == {"net-a": {A1}, "net-b": {B1}}
    assert desired.released == {"net-a": {A3}, "net-b": {A1}}
    assert young == {A2}
    assert desired_from_pods([], []) == (DesiredState.build([]), frozenset())


def test_resync_cluster_reads_the_controller_before_the_pods(controller):
    """The charm's order: networks, the controller, pods. A pod listed before the read could
    see its port posted by the operator between the two, then posted again (held twice)."""
    seen: list[tuple[str, int]] = []

    def networks():
        seen.append(("networks", len(controller.requests)))
        return ["net-a", "net-b"]

    def pods():
        seen.append(("pods", len(controller.requests)))
        return [PodPorts("p-0", {"net-a": [A1]}), PodPorts("q-0", {"net-b": [B1]})]

    controller.hold("net-a", A1)
    report, young = resync_cluster(client_for(controller), networks, pods)
    # One GET per network before the pods; networks again only because net-b was made.
    assert seen == [("networks", 0), ("pods", 2), ("networks", len(controller.requests))]
    assert report.networks_recreated == ["net-b"] and report.ports_confirmed == 1 and young == frozenset()
    assert controller.networks == {"net-a": [A1], "net-b": [B1]}
    seen.clear()
    again, _ = resync_cluster(client_for(controller), networks, pods)
    assert [what for what, _ in seen] == ["networks", "pods"]  # nothing made: no second listing
    assert not again.repaired


def test_a_network_deleted_while_it_was_remade_is_taken_out_again(controller):
    listings = iter([["net-a", "net-b"], ["net-a"]])  # net-b's L2Network goes during the round
    pods = [PodPorts("p-0", {"net-a": [A1]}), PodPorts("q-0", {"net-b": [B1]})]
    report, _ = resync_cluster(client_for(controller), lambda: next(listings), lambda: pods)
    assert set(controller.networks) == {"net-a"}
    assert report.networks_recreated == ["net-a"] and report.deleted_meanwhile == ["net-b"]
    assert "deleted meanwhile, taken out of the controller again: net-b" in report.summary()
    assert not report.failures


def test_a_rebuilt_network_deleted_meanwhile_leaves_no_repair_behind(controller):
    controller.hold("net-a", A1, A1)  # held twice: rebuilt
    listings = iter([["net-a"], []])
    report, _ = resync_cluster(
        client_for(controller), lambda: next(listings), lambda: [PodPorts("p-0", {"net-a": [A1]})]
    )
    assert controller.networks == {} and report.networks_rebuilt == {} and not report.repaired
    assert report.deleted_meanwhile == ["net-a"]


class _Refusing:
    """A client whose deletes are refused or find nothing: only forget_deleted's calls."""

    def __init__(self, error: Exception):
        self.error, self.deleted = error, []

    def delete_network(self, name: str) -> None:
        self.deleted.append(name)
        raise self.error


@pytest.mark.parametrize(
    ("error", "failures"),
    [
        (vnets.NetworkMissing("gone already"), []),
        (vnets.ControllerConflict("refused"), ["delete net-b, deleted meanwhile: refused"]),
    ],
)
def test_forget_deleted_reports_a_refusal_and_accepts_a_network_already_gone(error, failures):
    report = ResyncReport(networks_recreated=["net-a", "net-b"], networks_rebuilt={"net-c": "twice"})
    client = _Refusing(error)
    gone = forget_deleted(client, report, lambda: ["net-a", "net-c"])  # pyright: ignore[reportArgumentType]
    assert gone == ["net-b"] == client.deleted
    assert report.networks_recreated == ["net-a"] and report.networks_rebuilt == {"net-c": "twice"}
    assert report.failures == failures


def test_forget_deleted_lets_an_unreachable_controller_through():
    report = ResyncReport(networks_recreated=["net-b"])
    with pytest.raises(vnets.ControllerUnreachable):
        forget_deleted(_Refusing(vnets.ControllerUnreachable("down")), report, list)  # pyright: ignore[reportArgumentType]
