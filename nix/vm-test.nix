# The flake's VM check: two NixOS nodes (host.nix: the zcrx kernel and the
# tools) on the test driver's virtual switches, one Ethernet cell (xdp_drop)
# and one TCP cell (epoll) of the smoke profile run through the whole
# pipeline (snakemake -> runner -> the ssh platform -> summary.csv), and
# both must come out `ok`.
# Two vlans, not one: vlan 1 is the test link (eth1, where the cells'
# 198.18.0.0/15 traffic goes), vlan 2 carries SSH (eth2): the project never
# sends test traffic on an interface that carries an SSH session. The
# driver's vlans are a userspace VDE switch: fine for a functional check,
# meaningless for packet rates (nothing here is a measurement).
# Needs the ssh platform (docs/platforms.md: `platform: ssh` +
# `inventory:`). Checked against nixos/lib/testing/nodes.nix and
# network.nix @ 003d5816: `nodes`, `defaults`, `node.specialArgs` (module
# arguments usable in imports), vlans as eth1, eth2, ... addressed
# 192.168.<vlan>.<node number> (nodes numbered in name order).
{
  pkgs,
  lib,
  rxbenchPkgs,
  pins,
  src,
}:

pkgs.testers.runNixOSTest {
  name = "rxbench-two-node-smoke";
  globalTimeout = 3600;

  node.specialArgs = { inherit rxbenchPkgs pins; };

  defaults = {
    imports = [ ./host.nix ];
    rxbench.platform = "nixos-test";
    rxbench.hugepages = 64;
    virtualisation.vlans = [
      1
      2
    ];
    virtualisation.memorySize = 2048;
    virtualisation.cores = 2;
  };

  nodes.sender = {
    rxbench.role = "sender";
  };
  nodes.receiver = {
    rxbench.role = "receiver";
    # the receiver node also drives the campaign
    environment.systemPackages = [ rxbenchPkgs.python-env pkgs.openssh ];
  };

  testScript = ''
    import csv
    import io
    import json

    start_all()
    for m in (sender, receiver):
        m.wait_for_unit("sshd.service")

    def addr(m, dev):
        out = m.succeed(f"ip -4 -o addr show dev {dev}").split()
        return out[out.index("inet") + 1].split("/")[0]

    # a key made here, for this run only
    receiver.succeed("install -d -m 700 /root/.ssh && ssh-keygen -q -t ed25519 -N ''' -f /root/.ssh/rxbench_test")
    pub = receiver.succeed("cat /root/.ssh/rxbench_test.pub").strip()
    for m in (sender, receiver):
        m.succeed(f"install -d -m 700 /root/.ssh && echo '{pub}' >> /root/.ssh/authorized_keys")

    def side(m, test_ip, cpus):
        return {"address": addr(m, "eth2"), "port": 22, "user": "root",
                "key": "/root/.ssh/rxbench_test", "jump": None, "sudo": False,
                "known_hosts": None, "test_interface": "eth1", "test_ip": test_ip,
                "prefix": 30, "mtu": 1500, "cpus": cpus}
    inventory = {"sender": side(sender, "198.18.0.1", [0]),
                 "receiver": {**side(receiver, "198.18.0.2", [1]), "napi_cpus": [1]},
                 "provenance": {"platform": "nixos-test (runNixOSTest, VDE vlan)"}}
    receiver.succeed(f"echo {json.dumps(json.dumps(inventory))} > /tmp/inventory.yaml")

    receiver.succeed("cp -r ${src} /tmp/rxbench && chmod -R u+w /tmp/rxbench")
    # the smoke profile cut to one cell per layer (--config values are YAML;
    # the project's config merge keeps the rest of each section)
    receiver.succeed(
        "cd /tmp/rxbench && PYTHONPATH=/tmp/rxbench/workflow RXBENCH_NATIVE=/etc/rxbench/native"
        " snakemake --cores 1"
        " --config profile=smoke platform=ssh inventory=/tmp/inventory.yaml"
        " 'eth={stacks: [xdp_drop], generator: rxb-gen, sizes: [64]}'"
        " 'tcp={stacks: [epoll], conns: [1], msgs: [65536]}'"
        " -- results/ssh/summary.csv",
        timeout=2400)

    rows = list(csv.DictReader(io.StringIO(
        receiver.succeed("cat /tmp/rxbench/results/ssh/summary.csv"))))
    cells = {(r["layer"], r["stack"]) for r in rows}
    assert cells == {("eth", "xdp_drop"), ("tcp", "epoll")}, f"cells: {cells}"
    bad = [r for r in rows if r["status"] != "ok"]
    assert not bad, f"not ok: {bad}"

    # nothing of the run left on the test link
    for m in (sender, receiver):
        m.fail("ip -4 -o addr show dev eth1 | grep -q 198.18.")
  '';
}
