#!/usr/bin/env bash
# System programs the tests and the lab use for real, pinned to Debian 12's releases: nginx
# (`nginx -t` on rendered configs, the downloader's origin), nft (`nft -c` on rendered rulesets),
# Open vSwitch and ethtool (the lab's switches; checksum offload off on its veths), ping, iperf3
# (the benchmarks). Installed only when missing; without root, the tests that need them say
# what is missing and skip.
# A pin names the upstream release and Debian revision with a trailing glob: Debian's security
# suite replaces the `+deb12uN` builds, and an exact pin would fail once the archive moves on.
set -euo pipefail

declare -A pins=(
  [nginx]="nginx-light=1.22.1-9* nginx=1.22.1-9* nginx-common=1.22.1-9*"
  [nft]="nftables=1.0.6-2*"
  [ovs-vswitchd]="openvswitch-switch=3.1.0-2* openvswitch-common=3.1.0-2*"
  [ethtool]="ethtool=1:6.1-1*"
  [ping]="iputils-ping=3:20221126-1*"
  [iperf3]="iperf3=3.12-1*"
)
need=()
for program in "${!pins[@]}"; do
  if ! command -v "$program" >/dev/null && [ ! -x "/usr/sbin/$program" ]; then
    read -ra wanted <<<"${pins[$program]}"
    need+=("${wanted[@]}")
  fi
done
[ "${#need[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "sysdeps: not root or no apt-get: install ${need[*]} to run every test" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Packages must not start their services (nginx would listen on port 80): tests start their own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
