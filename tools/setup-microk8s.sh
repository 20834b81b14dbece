#!/usr/bin/env bash
# A real cluster for the charms on a fresh Ubuntu machine: MicroK8s with Multus, the kubelet
# allowing the router's pod sysctl, a Juju controller on it, model `l2sm` with bundles/l2sm.yaml.
# Idempotent: every step checks first. Run from the repository, as a user with sudo:
#   tools/setup-microk8s.sh [--juju-channel 3.6/stable|2.9/stable] [--microk8s-channel 1.32/stable] [--no-deploy]
# Juju 2.9 is OSM's VCA; 3.6 (the default) is the LTS. Then: tools/integration.py --l2sm-model l2sm.
set -euo pipefail

JUJU_CHANNEL=3.6/stable
MICROK8S_CHANNEL=1.32/stable
DEPLOY=1
while [ $# -gt 0 ]; do
  case "$1" in
    --juju-channel) JUJU_CHANNEL=$2; shift 2 ;;
    --microk8s-channel) MICROK8S_CHANNEL=$2; shift 2 ;;
    --no-deploy) DEPLOY=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$JUJU_CHANNEL" in
  2.9/*|3.6/*|4*) ;;
  *) echo "--juju-channel: 2.9/..., 3.6/... or 4...; not $JUJU_CHANNEL" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
KUBELET_ARGS=/var/snap/microk8s/current/args/kubelet
SYSCTL_FLAG=--allowed-unsafe-sysctls=net.ipv4.ip_forward

snap list microk8s >/dev/null 2>&1 || sudo snap install microk8s --classic --channel "$MICROK8S_CHANNEL"
snap list juju >/dev/null 2>&1 || sudo snap install juju --channel "$JUJU_CHANNEL" $([ "${JUJU_CHANNEL%%/*}" = 2.9 ] && echo --classic)
sudo usermod -a -G snap_microk8s "$USER"
sudo microk8s status --wait-ready >/dev/null

# The router forwards only with the pod sysctl net.ipv4.ip_forward=1 (bundles/cdn.yaml).
if ! grep -q -- "$SYSCTL_FLAG" "$KUBELET_ARGS"; then
  echo "$SYSCTL_FLAG" | sudo tee -a "$KUBELET_ARGS" >/dev/null
  sudo snap restart microk8s.daemon-kubelite
  sudo microk8s status --wait-ready >/dev/null
fi
sudo microk8s enable dns
sudo microk8s enable hostpath-storage
sudo microk8s enable community
sudo microk8s enable multus
# Switches and pods forward between each other (README: node prerequisites).
sudo iptables -P FORWARD ACCEPT

# Any current controller will do (its cloud is checked by the suite); the group is new to this shell.
juju show-controller >/dev/null 2>&1 || sg snap_microk8s -c "juju bootstrap microk8s"
juju show-model l2sm >/dev/null 2>&1 || juju add-model l2sm
[ "$DEPLOY" = 1 ] || exit 0
# The packed charms (make stage, then charmcraft pack in each build/<charm>/): the overlay names them.
if ! ls build/l2sm-controller/l2sm-controller_ubuntu@22.04-amd64.charm build/l2sm-switch/l2sm-switch_ubuntu@22.04-amd64.charm >/dev/null 2>&1; then
  make stage
  snap list charmcraft >/dev/null 2>&1 || sudo snap install charmcraft --classic
  for charm in l2sm-controller l2sm-switch; do
    (cd "build/$charm" && charmcraft pack --platform ubuntu@22.04:amd64)
  done
fi
if ! juju status -m l2sm --format json | grep -q '"l2sm-controller"'; then
  juju deploy ./bundles/l2sm.yaml --trust --overlay ./bundles/overlays/l2sm-local-charms.yaml -m l2sm
fi
echo "model l2sm deploying: juju status -m l2sm --watch 5s; then .venv/bin/python tools/integration.py --l2sm-model l2sm"
