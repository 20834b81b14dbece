"""The Overlay passes its CRD schema, and the switch's start script really sets fail_mode."""

import subprocess
import textwrap

import kubernetes_validate
import pytest

from l2sm_controlplane.crds import validate_custom_object
from l2sm_core.manifests import INSTANCE, MODEL, switch
from l2sm_core.naming import bridge_name_for
from l2sm_core.topology import parse_topology


def build(nodes=("node-a", "node-b", "node-c"), topo="full-mesh", image=switch.DEFAULT_SWITCH_IMAGE):
    links = parse_topology(topo, nodes)
    return switch.overlay(
        "l2sm-switch", "switch-model", "l2sm", "fabric", nodes, links, 10, "10.152.183.20", 6633, image
    )


def test_overlay_labels_name_the_application_and_model_not_the_namespace():
    meta = build()["metadata"]
    assert meta["namespace"] == "l2sm"
    assert meta["labels"][INSTANCE] == "l2sm-switch"
    assert meta["labels"][MODEL] == "switch-model"


def test_overlay_matches_crd():
    obj = build()
    validate_custom_object(obj)
    spec = obj["spec"]
    assert spec["provider"] == {"name": "l2sm-controller", "domain": ["10.152.183.20"], "ofPort": "6633"}
    assert len(spec["topology"]["links"]) == 3
    container = spec["switchTemplate"]["spec"]["containers"][0]
    # The template's container is a real Pod container: check it with the Kubernetes schema.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [container]}}
    kubernetes_validate.validate(pod, "1.31", strict=True)


def test_overlay_hash_follows_every_input():
    base = build()["metadata"]["annotations"]
    assert build()["metadata"]["annotations"] == base
    assert build(nodes=("node-a", "node-b"))["metadata"]["annotations"] != base
    assert build(topo="node-a:node-b, node-b:node-c")["metadata"]["annotations"] != base
    assert build(image="example/talpa:dev")["metadata"]["annotations"] != base


def _fake_tools(tmp_path, talpa_body):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ovs.log"
    bridge = bridge_name_for("node-a")
    (bin_dir / "talpa").write_text(f"#!/bin/sh\n{talpa_body}\n")
    (bin_dir / "ovs-vsctl").write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            echo "$@" >> {log}
            case "$*" in
              *list-br*) [ -f {tmp_path}/bridge ] && echo {bridge} ;;
            esac
            exit 0
            """
        )
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "NODENAME": "node-a"}
    return env, log, bridge


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_script_sets_secure_fail_mode_on_the_bridge_talpa_made(tmp_path, shell):
    env, log, bridge = _fake_tools(tmp_path, f"sleep 0.3; touch {tmp_path}/bridge; sleep 2.5; exit 0")
    result = subprocess.run(
        [shell, "-c", switch.SECURE_SWITCH_SCRIPT], env=env, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert f"--db={switch.OVS_DB} set-fail-mode {bridge} secure" in calls
    assert f"fail_mode=secure set on {bridge}" in result.stdout.decode()


def test_script_exits_with_talpa_when_it_dies_first(tmp_path):
    env, log, _ = _fake_tools(tmp_path, "exit 3")
    result = subprocess.run(["/bin/sh", "-c", switch.SECURE_SWITCH_SCRIPT], env=env, timeout=30)
    assert result.returncode == 3
    assert "set-fail-mode" not in (log.read_text() if log.exists() else "")


def test_script_passes_the_stop_signal_on(tmp_path):
    import signal

    env, _, _ = _fake_tools(tmp_path, f"touch {tmp_path}/bridge; exec sleep 30")
    proc = subprocess.Popen(["/bin/sh", "-c", switch.SECURE_SWITCH_SCRIPT], env=env, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert b"fail_mode=secure set" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 143  # not the pod's whole grace period
    finally:
        proc.kill()
