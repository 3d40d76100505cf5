"""The vm platform: two QEMU guests (sender, receiver) on a bridge, as in the
seed's appendix, booted once per campaign by a lease (rxbench.lease) and
reached over SSH like any other pair of hosts (the ssh platform's testbed
gets the inventory lease_up returns).

Host side, all inside one network namespace the lease creates (rxb-vm-<tok>),
nothing of the host's own interfaces touched:
  - bridge `br0` with the guests' test taps `tap0`/`tap1` (guests address
    their test NIC 198.18.0.1/30 and .2/30 themselves; no NAT, no route out);
  - management: a second NIC per guest on QEMU user networking (no default
    route in the guest; slirp itself runs in the namespace) with hostfwd of SSH bound to the
    namespace end (198.19.K.2) of a veth whose root-namespace end is
    198.19.K.1/30: the controller reaches the guests at 198.19.K.2:2201/2202
    and control traffic never crosses the test link.
Everything is written to the lease record before it is created; lease_down
removes it from the record alone (after a SIGKILL too).

Two kinds of guest image: the Debian image the platform builds itself
(vm/build-image.sh; its init, vm/rxb-init, addresses the test NIC from the
kernel command line and the image carries its own key pair), or, with
`platforms.vm.nix_image: PATH`, the flake's NixOS images (`nix build
.#vm-images`: PATH/sender/boot.json, PATH/receiver/boot.json, see
nix/vm-image.nix): kernel, initrd, disk and kernel arguments from boot.json,
a key pair made for the lease and handed to the guests by QEMU fw_cfg, and
the test NIC configured over SSH once the guest answers (nix_configure).

The package along its seams: common (addresses, MACs, SSH to the guests),
image (the Debian image's recipe, cache and build; the flake's NixOS images
read from their boot.json), guests (QEMU command lines, KVM and vhost
probing, booting and waiting for the guests, their health), lease (lease_up
and lease_down: the namespace, bridge, taps and management link around the
guests) and testbed (the cells, on the ssh platform's testbed).
"""

from .common import (MGMT_MACS, MGMT_NET, ROLES, SSH_PORTS, TEST_IF, TEST_IPS, TEST_MACS,
                     TEST_PREFIX, VmError, ssh, ssh_argv)
from .guests import (GuestDied, health, kernel_append, nix_configure, nix_image_facts,
                     probe_kvm, qemu_argv, vhost_usable)
from .image import (GUEST_TOOLS, RECIPE_FILES, build_image, check_pins, image_command,
                    image_dir, image_hash, image_recipe, nix_image_hash, nix_image_path,
                    pktgen_dir, read_boot_json, read_nix_image, tool_dir)
from .lease import lease_down, lease_key, lease_up
from .testbed import GUEST_NATIVE_DIR, SLACK_S, VmTestbed, clean_guests, ssh_inventory

# What this platform can and cannot show, and where it has run (tables.platform_rows)
CAN_SHOW = ("whether every path of the hardware profile runs: virtio-net with several "
            "queues and RSS behind a vIOMMU, AF_XDP zero-copy, DPDK through vfio-pci, "
            "Linux pktgen and Pktgen-DPDK")
CANNOT_SHOW = ("rates under TCG (an emulated CPU says whether a path runs, not how fast); "
               "zcrx (virtio-net has no header split)")
EXERCISED = "QEMU guests under TCG on this machine (its KVM runs only PVM guests)"

__all__ = ["MGMT_MACS", "MGMT_NET", "ROLES", "SSH_PORTS", "TEST_IF", "TEST_IPS", "TEST_MACS",
           "TEST_PREFIX", "VmError", "ssh", "ssh_argv", "GuestDied", "health", "kernel_append",
           "nix_configure", "nix_image_facts", "probe_kvm", "qemu_argv", "vhost_usable",
           "GUEST_TOOLS", "RECIPE_FILES", "build_image", "pktgen_dir", "tool_dir", "check_pins", "image_command", "image_dir",
           "image_hash", "image_recipe", "nix_image_hash", "nix_image_path", "read_boot_json",
           "read_nix_image", "lease_down", "lease_key", "lease_up", "GUEST_NATIVE_DIR",
           "SLACK_S", "VmTestbed", "clean_guests", "ssh_inventory"]
