"""The ruleset the charm pushes, checked by the real nft (`nft -c -f`: the kernel checks the
batch and commits nothing), in a fresh network namespace so nothing can touch the host's tables.
Skipped without nft or root."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import nft_runs, settle

NFT = shutil.which("nft") or "/usr/sbin/nft"
RULES = """
- {name: web, from: clients, to: caches, protocol: tcp, port: 80}
- {name: fill, from: caches, to: 10.0.1.0/24, protocol: tcp, port: 8000-8080}
- {name: dns, from: any, to: 10.0.2.53, protocol: udp, port: "53"}
- {name: ping, from: any, to: any, protocol: icmp}
- {name: no-telnet, from: any, to: any, protocol: tcp, port: 23, action: drop}
"""

pytestmark = pytest.mark.skipif(
    not os.access(NFT, os.X_OK) or os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="nft -c needs nftables, root and unshare (make sysdeps installs nftables)",
)


def test_the_pushed_ruleset_passes_nft_check(ctx, cluster, etc):
    out = settle(ctx, cluster, etc, config={"rules": RULES, "default-policy": "accept"})
    out = ctx.run(
        ctx.on.action(
            "add-rule",
            params={"name": "ssh", "from": "clients", "to": "any", "protocol": "tcp", "port": "22"},
        ),
        out,
    )
    ctx.run(ctx.on.action("set-link", params={"network": "caches", "state": "down"}), out)
    [*_, ruleset] = nft_runs(ctx)
    assert (etc / "ruleset.nft").read_text() == ruleset
    result = subprocess.run(
        ["unshare", "-n", NFT, "-c", "-f", str(etc / "ruleset.nft")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert result.returncode == 0, f"nft -c refused:\n{result.stderr}\n{ruleset}"
