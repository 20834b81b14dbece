import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core import topology
from l2sm_core.topology import Link


def test_fnv1_32_vectors():
    # Published FNV-1 32-bit test vectors (not FNV-1a).
    assert topology.fnv1_32(b"") == 0x811C9DC5
    assert topology.fnv1_32(b"a") == 0x050C5D7E
    assert topology.fnv1_32(b"foobar") == 0x31F0B262


def test_switch_pod_name():
    name = topology.switch_pod_name("ov", "node-a")
    assert name == f"sps-{topology.fnv1_32(b'ovnode-a'):04x}"
    assert name.startswith("sps-") and len(name) <= 12


def test_nodes_parsed_sorted_unique():
    assert topology.parse_nodes(" node-b, node-a,node-b ,") == ("node-a", "node-b")
    assert topology.parse_nodes("") == ()
    with pytest.raises(ValueError, match="not a Kubernetes node name"):
        topology.parse_nodes("Node_A")


@pytest.mark.parametrize(
    "text", ["node-a\n", "node-a\nnode-b", "Node-a", "node_a", "-node", "n" * 254, "\u0430"]
)
def test_node_names_are_matched_whole(text):
    # fullmatch: `$` used to let "node-a\n" through as a node name.
    with pytest.raises(ValueError, match="not a Kubernetes node name"):
        topology.node_name(text)


@pytest.mark.parametrize("text", [",", " , ,"])
def test_commas_without_names_are_refused(text):
    # Not "every node": the user meant to list some.
    with pytest.raises(ValueError, match="names no node"):
        topology.parse_nodes(text)


def test_messages_echo_values_clipped():
    huge = "x" * 10_000
    for call in (
        lambda: topology.parse_nodes(huge),
        lambda: topology.parse_topology(huge, ("a", "b")),
        lambda: topology.parse_topology(f"a:{huge}", ("a", "b")),
        lambda: topology.parse_topology("a:z", tuple(f"node-{i:03}" for i in range(500))),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert len(str(info.value)) < 300


def test_full_mesh():
    nodes = ("c", "a", "b")
    assert topology.parse_topology("full-mesh", nodes) == (Link("a", "b"), Link("a", "c"), Link("b", "c"))
    assert topology.parse_topology("full-mesh", ("a",)) == ()


def test_explicit_links():
    nodes = ("a", "b", "c")
    assert topology.parse_topology("b:a, a:b, b:c", nodes) == (Link("a", "b"), Link("b", "c"))
    assert topology.isolated_nodes(nodes, (Link("a", "b"),)) == ("c",)
    assert topology.isolated_nodes(("a",), ()) == ()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a:z", "'z', which is not a switch node"),
        ("a:a", "two different nodes"),
        ("a-b", "not a link"),
        ("a:b:c", "not a link"),
        (" , ", "no links given"),
    ],
)
def test_bad_links(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        topology.parse_topology(text, ("a", "b", "c"))


@given(st.lists(st.sampled_from(["n1", "n2", "n3", "n4"]), min_size=2, max_size=4, unique=True))
def test_full_mesh_links_every_pair_once(nodes):
    links = topology.parse_topology("full-mesh", tuple(nodes))
    assert len(links) == len(list(itertools.combinations(nodes, 2)))
    assert topology.isolated_nodes(tuple(nodes), links) == ()
