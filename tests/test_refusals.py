"""The README's "What the charms refuse" list, kept true: every rule it states is checked
here against the real boundary (the charms' config and params models, the relation
schemas, the core validators), and rules about behaviour name the unit tests that prove
them through the charm. A rule added to the README without a check fails here, and so
does a check whose rule left the README."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pydantic
import pytest

from l2sm_charmlib.l2sm_controller import ControllerProviderAppData
from l2sm_core import attachments, knf
from l2sm_core.validation import Flag, describe_validation_error
from l2sm_knf.l2sm_network import NetworkInfo, NetworkProviderAppData, NetworkRequirerUnitData
from l2sm_testing.samples import CONTROLLER_APP_DATA

ROOT = Path(__file__).resolve().parent.parent
SECTION = "### What the charms refuse"


def _models(charm: str):
    """A charm's models.py, under a name of its own (every charm has a `models` module)."""
    name = f"refusals_{charm.replace('-', '_')}_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "charms" / charm / "src" / "models.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def refused(model: type[pydantic.BaseModel], values: dict, field: str, kind: str = "parameter") -> str:
    """The message `model` gives for `values`, which must name `field`."""
    with pytest.raises(pydantic.ValidationError) as info:
        model.model_validate(values)
    message = describe_validation_error(info.value, kind)
    # "option 'x': ..." for one field; a rule across fields names them in its own words.
    assert f"{kind} '{field}'" in message or message.startswith(field), message
    assert len(message) < 400, message
    return message


def proven_by(path: str, *tests: str) -> None:
    """Behaviour checked through the charm: the named unit tests exist (make unit runs them)."""
    tree = ast.parse((ROOT / path).read_text())
    names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    missing = [t for t in tests if t not in names]
    assert not missing, f"{path} has no {', '.join(missing)}"


# -- one check per rule ----------------------------------------------------------------------


def names() -> None:
    controller, network, switch = (_models(c) for c in ("l2sm-controller", "l2sm-network", "l2sm-switch"))
    for bad in ["net-a\n", " net-a", "Net-A", "net_a", "a" * 64]:
        refused(controller.NetworkParams, {"name": bad}, "name")
        refused(network.NetworkConfig, {"network_name": bad}, "network-name", "option")
        refused(switch.SwitchConfig, {"overlay_name": bad}, "overlay-name", "option")
    for bad in ["ov-veth", "o" * 51]:
        refused(switch.SwitchConfig, {"overlay_name": bad}, "overlay-name", "option")
    with pytest.raises(ValueError, match="DNS-1123"):
        knf.parse_addresses("net_a=10.0.1.10/24")
    # Networks made with helm or kubectl may have dots: show and delete take them.
    assert controller.ExistingNetworkParams.model_validate({"name": "cdn.video-net"}).name == "cdn.video-net"
    refused(controller.ExistingNetworkParams, {"name": "cdn..net"}, "name")
    with pytest.raises(ValueError, match="DNS-1123 subdomain"):
        attachments.parse_l2sm_networks("net-a, Net_B")
    assert attachments.parse_l2sm_networks("cdn.video-net")[0].name == "cdn.video-net"


def booleans() -> None:
    controller = _models("l2sm-controller")
    flag = pydantic.TypeAdapter(Flag)
    for loose in ["yes", 1, "", "on"]:
        refused(controller.DeleteNetworkParams, {"name": "net-a", "force": loose}, "force")
        refused(ControllerProviderAppData, CONTROLLER_APP_DATA | {"ready": loose}, "ready", "field")
        with pytest.raises(pydantic.ValidationError):
            flag.validate_python(loose)
    proven_by("knf/tests/test_l2sm_network.py", "test_a_loose_forwards_value_is_refused")


def network_cidrs() -> None:
    controller, network = _models("l2sm-controller"), _models("l2sm-network")
    good = network.NetworkConfig.model_validate({"cidr": "10.0.1.0/24"})
    assert good.cidr == "10.0.1.0/24"
    for bad in [
        "0.0.0.0/0",
        "8.0.0.0/7",
        "10.0.1.0/31",
        "10.0.1.7/24",
        "10.0.1.0/255.255.255.0",
        "fd00::/64",
        "0.0.0.0/8",
        "127.0.0.0/24",
        "169.254.1.0/24",
        "224.0.0.0/24",
        "240.0.0.0/24",
    ]:
        refused(network.NetworkConfig, {"cidr": bad}, "cidr", "option")
        refused(controller.CreateNetworkParams, {"name": "net-a", "cidr": bad}, "cidr")


def action_parameters() -> None:
    for charm, model in (
        ("l2sm-controller", "NoParams"),
        ("l2sm-network", "ShowParams"),
        ("l2sm-switch", "ShowTopologyParams"),
    ):
        params = getattr(_models(charm), model)
        assert params.model_validate({"application_name": ""}).application_name == ""
        assert params.model_validate({"application_name": "cdn-router"}).application_name == "cdn-router"
        for bad in ["cdn_router", "cdn-1", "Cdn", "cdn\n"]:
            refused(params, {"application_name": bad}, "application-name")
        refused(params, {"applicaton_name": "x"}, "applicaton-name")
    proven_by("charmlib/tests/test_reconcile.py", "test_unknown_parameters_are_refused_not_dropped")


def pod_annotations() -> None:
    pod = {
        "metadata": {
            "name": "web-0",
            "namespace": "tenant",
            "annotations": {attachments.L2SM_NETWORKS_ANNOTATION: '[{"name": "net-a", "ips": 5}]'},
        },
        "spec": {"nodeName": "node-a"},
    }
    read = attachments.read_pod(pod)
    assert read.problems and read.endpoints() == {}
    proven_by(
        "charms/l2sm-controller/tests/unit/test_charm_platform.py",
        "test_one_bad_pod_never_stops_show_or_delete",
    )
    proven_by("charms/l2sm-switch/tests/unit/test_charm_refusals.py", "test_a_bad_pod_is_named_and_skipped")
    proven_by(
        "knf/tests/test_l2sm_network.py",
        "test_a_spoiled_pod_annotation_is_named_and_the_last_interfaces_kept",
    )


def controller_rules() -> None:
    config = _models("l2sm-controller").CharmConfig
    for values, field in [
        ({"webhook_certificate_days": 6}, "webhook-certificate-days"),
        ({"webhook_certificate_days": "365"}, "webhook-certificate-days"),
        ({"webhook_renew_days": 0}, "webhook-renew-days"),
        ({"webhook_renew_days": True}, "webhook-renew-days"),
    ]:
        refused(config, values, field, "option")
    message = refused(
        config, {"webhook_certificate_days": 30, "webhook_renew_days": 30}, "webhook-renew-days"
    )
    assert "less than" in message
    proven_by(
        "charms/l2sm-controller/tests/unit/test_charm_platform.py",
        "test_refused_option_keeps_serving_the_last_good_config",
        "test_actions_before_the_crds_exist_fail_clearly",
        "test_an_answer_the_charm_cannot_read_changes_nothing",
    )
    proven_by(
        "charms/l2sm-controller/tests/unit/test_charm_actions.py",
        "test_create_network_name_taken_anywhere",
        "test_delete_refuses_application_owned",
        "test_delete_refuses_attached_unless_forced",
        "test_delete_refuses_unmanaged_unless_forced",
    )


def switch_rules() -> None:
    config = _models("l2sm-switch").SwitchConfig
    for bad in ["Talpa:1", "alexdecb/talpa:", "alexdecb/talpa:1.3.8\n", "a b", "talpa:\u0663"]:
        refused(config, {"switch_image": bad}, "switch-image", "option")
    assert config.model_validate({"switch_image": "localhost:5000/l2sm/talpa:dev"})
    for bad in [0, 65, "10", True]:
        refused(config, {"interfaces_per_node": bad}, "interfaces-per-node", "option")
    refused(config, {"nodes": ","}, "nodes", "option")
    proven_by(
        "charms/l2sm-switch/tests/unit/test_charm_isolation.py",
        "test_another_fabric_is_refused_and_left_alone",
    )
    proven_by(
        "charms/l2sm-switch/tests/unit/test_charm_fabric.py",
        "test_rename_refused_while_ports_are_held",
        "test_interfaces_below_ports_in_use_refused",
    )
    proven_by(
        "charms/l2sm-switch/tests/unit/test_charm_refusals.py",
        "test_bad_options_keep_the_live_fabric",
        "test_bad_controller_data_keeps_the_live_fabric",
    )


def network_rules() -> None:
    config = _models("l2sm-network").NetworkConfig
    refused(config, {"cidr": "10.0.1.0/24", "reserved": "10.0.2.1"}, "reserved", "option")
    refused(config, {"cidr": "10.0.1.0/24", "reserved": ",".join(["10.0.1.1"] * 257)}, "reserved", "option")
    for bad in [575, 1401, "1400"]:
        refused(config, {"mtu": bad}, "mtu", "option")
    refused(config, {"type": "vlink"}, "type", "option")
    for field, value in [
        ("cluster-ip", "0.0.0.0"),
        ("cluster-ip", "127.0.0.1"),
        ("rest-url", "ftp://10.152.183.20:8181"),
        ("rest-url", "http://karaf:karaf@10.152.183.20:8181"),
        ("openflow-port", "6633"),
        ("openflow-port", 0),
    ]:
        refused(ControllerProviderAppData, CONTROLLER_APP_DATA | {field: value}, field, "field")
    proven_by(
        "charms/l2sm-network/tests/unit/test_charm_refusals.py",
        "test_reserving_a_held_address_is_refused_and_the_holder_keeps_it",
        "test_cidr_change_under_holders_is_refused_naming_them",
    )


def member_rules() -> None:
    for data, field in [
        ({"address": "10.0.1.10"}, "address"),
        ({"address": "10.0.1.10/255.255.255.0"}, "address"),
        ({"offered-prefixes": ["0.0.0.0/0"]}, "offered-prefixes"),
        ({"offered-prefixes": ["127.0.0.0/8"]}, "offered-prefixes"),
        ({"offered-prefixes": [f"10.9.{i}.0/24" for i in range(33)]}, "offered-prefixes"),
        ({"offered-prefixes": "10.0.2.0/24"}, "offered-prefixes"),
    ]:
        refused(NetworkRequirerUnitData, data, field, "field")
    proven_by(
        "charms/l2sm-network/tests/unit/test_charm_refusals.py",
        "test_bad_unit_data_keeps_what_it_holds_others_unaffected",
        "test_bad_offers_are_refused_and_the_router_keeps_address_and_routes",
        "test_a_refused_new_request_keeps_the_working_address",
    )


def knf_addresses() -> None:
    assert knf.parse_addresses("net-a=10.0.1.10/24, net-b=10.0.2.1/24") == {
        "net-a": "10.0.1.10/24",
        "net-b": "10.0.2.1/24",
    }
    for bad in [
        "net-a=10.0.1.10/24\nnet-b=10.0.2.1/24",
        "net-a=10.0.1.10/255.255.255.0",
        "net-a=10.0.1.10/32",
        "net-a=10.0.1.0/24",
        "net-a=127.0.0.10/24",
        "net-a=10.0.1.10/24,net-a=10.0.1.11/24",
        "net-a=" + "1" * 5000,
    ]:
        with pytest.raises(ValueError):
            knf.parse_addresses(bad)
    with pytest.raises(ValueError, match="outside"):
        knf.request_in_cidr("net-a", "10.0.5.10/24", 0, "10.0.1.0/24")
    with pytest.raises(ValueError):
        knf.request_in_cidr("net-a", "10.0.1.254/24", 2, "10.0.1.0/24")  # unit 2 lands on .0
    proven_by("knf/tests/test_l2sm_network.py", "test_a_pure_l2_network_is_not_asked_for_an_address")


def knf_network_answers() -> None:
    network = {"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 1400, "type": "vnet"}
    for extra, field in [
        ({"network": network | {"mtu": 9000}}, "network"),
        ({"assignments": {"knf/0": "10.0.2.5/24"}}, "assignments"),
        ({"routes": [{"prefix": "0.0.0.0/0", "via": "10.0.1.1"}]}, "routes"),
    ]:
        with pytest.raises(pydantic.ValidationError) as info:
            NetworkProviderAppData.model_validate({"network": network} | extra)
        assert field in describe_validation_error(info.value, "field")
    with pytest.raises(pydantic.ValidationError):
        NetworkInfo.model_validate(network | {"mtu": 1500})
    proven_by(
        "knf/tests/test_l2sm_network.py",
        "test_a_bad_field_from_the_network_is_named_and_the_last_good_kept",
        "test_one_bad_route_does_not_cost_the_good_ones",
        "test_what_cannot_be_applied_is_refused_and_the_last_applied_kept",
        "test_annotations_edited_on_a_running_pod_do_not_move_its_interfaces",
    )


CHECKS: dict[str, Callable[[], None]] = {
    "Names": names,
    "Booleans": booleans,
    "Network CIDRs": network_cidrs,
    "Action parameters": action_parameters,
    "Pod annotations": pod_annotations,
    "l2sm-controller": controller_rules,
    "l2sm-switch": switch_rules,
    "l2sm-network": network_rules,
    "Members of a network": member_rules,
    "KNF library, `addresses`": knf_addresses,
    "KNF library, what a network sends": knf_network_answers,
}


def readme_rules() -> list[str]:
    text = (ROOT / "README.md").read_text()
    assert SECTION in text, f"README.md lost its {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^- \*\*(.+?)\*\*", section, flags=re.MULTILINE)


def test_every_rule_in_the_readme_has_a_check_and_back():
    rules = readme_rules()
    assert len(rules) == len(set(rules)), "two README rules share a name"
    assert sorted(rules) == sorted(CHECKS)


@pytest.mark.parametrize("rule", sorted(CHECKS))
def test_rule(rule):
    CHECKS[rule]()


def test_samples_are_what_the_controller_publishes():
    # The checks above start from this sample: it must itself be accepted.
    ControllerProviderAppData.model_validate(json.loads(json.dumps(CONTROLLER_APP_DATA)))
