#!/usr/bin/env bash
# A real cluster for the charms on a fresh Ubuntu machine: MicroK8s with Multus, the kubelet
# allowing the router's pod sysctl, a Juju controller on it, model `l2sm` with bundles/l2sm.yaml,
# the suite's charms packed (charmcraft, in LXD) and kubectl reading ~/.kube/config.
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
# The cloud a strict Juju is given when it cannot see this MicroK8s by itself.
ADDED_CLOUD=l2sm-microk8s
# Every charm tests/integration deploys (its conftest's SUITE_CHARMS).
CHARMS="l2sm-controller l2sm-switch l2sm-network cdn-content-server cdn-router cdn-cache"
BASE=ubuntu@22.04

# classic or strict, from `snap list`'s notes column.
confinement() { snap list "$1" | awk 'NR == 2 { print ($NF ~ /classic/) ? "classic" : "strict" }'; }

snap list microk8s >/dev/null 2>&1 || sudo snap install microk8s --classic --channel "$MICROK8S_CHANNEL"
snap list juju >/dev/null 2>&1 || sudo snap install juju --channel "$JUJU_CHANNEL" $([ "${JUJU_CHANNEL%%/*}" = 2.9 ] && echo --classic)
# The classic MicroK8s snap trusts group microk8s, the strict one snap_microk8s.
MK8S_GROUP=microk8s
[ "$(confinement microk8s)" = classic ] || MK8S_GROUP=snap_microk8s
sudo usermod -a -G "$MK8S_GROUP" "$USER"
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

# kubectl for the suite's leftover checks: the group above is not active in this shell (nor in
# the next until the user logs in again), so it reads ~/.kube/config instead of `microk8s kubectl`.
command -v kubectl >/dev/null 2>&1 || sudo snap install kubectl --classic
KUBECONFIG_NOTE=""
if [ ! -s "$HOME/.kube/config" ]; then
  mkdir -p "$HOME/.kube"
  (umask 077; sudo microk8s config >"$HOME/.kube/config")
else
  KUBECONFIG_NOTE=" (~/.kube/config was there already and is kept: if it is another cluster's, add --kubectl 'sudo microk8s kubectl')"
fi

# The strict Juju snap cannot make ~/.local/share itself (Juju's tutorial makes it first).
mkdir -p "$HOME/.local/share"
# Any current controller will do (its cloud is checked by the suite).
if ! juju show-controller >/dev/null 2>&1; then
  if [ "$(confinement juju)" = "$(confinement microk8s)" ]; then
    # Same confinement (Juju 2.9 and MicroK8s both classic): Juju finds MicroK8s itself, through
    # the microk8s command, which needs the group new to this shell.
    sg "$MK8S_GROUP" -c "juju bootstrap microk8s"
  else
    # A strict Juju (3.x, 4) works with the built-in microk8s cloud only if MicroK8s is strict
    # too: give it this cluster's kubeconfig as a cloud of its own.
    juju show-cloud --client "$ADDED_CLOUD" >/dev/null 2>&1 \
      || sudo microk8s config | juju add-k8s "$ADDED_CLOUD" --client
    juju bootstrap "$ADDED_CLOUD"
  fi
fi
juju show-model l2sm >/dev/null 2>&1 || juju add-model l2sm
[ "$DEPLOY" = 1 ] || exit 0

# The packed charms (make stage, then charmcraft pack in each build/<charm>/): the overlay names
# the core's, the suite deploys them all. charmcraft builds in an LXD container: LXD initialised
# (a storage pool and a bridge) and the user in group lxd, new to this shell as well.
missing=""
for charm in $CHARMS; do
  [ -f "build/$charm/${charm}_$BASE-amd64.charm" ] || missing="$missing $charm"
done
if [ -n "$missing" ]; then
  make stage
  snap list charmcraft >/dev/null 2>&1 || sudo snap install charmcraft --classic
  snap list lxd >/dev/null 2>&1 || sudo snap install lxd
  sudo lxd waitready
  [ -n "$(sudo lxc storage list --format csv)" ] || sudo lxd init --auto
  sudo usermod -a -G lxd "$USER"
  for charm in $missing; do
    (cd "build/$charm" && sg lxd -c "charmcraft pack --platform $BASE:amd64")
  done
fi
if ! juju status -m l2sm --format json | grep -q '"l2sm-controller"'; then
  juju deploy ./bundles/l2sm.yaml --trust --overlay ./bundles/overlays/l2sm-local-charms.yaml -m l2sm
fi
echo "model l2sm deploying: juju status -m l2sm --watch 5s; then .venv/bin/python tools/integration.py --l2sm-model l2sm$KUBECONFIG_NOTE"
