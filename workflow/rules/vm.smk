# The vm platform's guest image: Debian by debootstrap, the native tools
# built inside it (vm/build-image.sh). Cached outside the clone, in a
# directory named by the hash of the recipe (platforms.vm.image or
# versions.yaml's debian.guest, vm/build-image.sh, vm/rxb-init, native/
# sources): rebuilt only when one of them changes. Its build log is kept
# beside it (<hash>.build.log) and inside it (build.log).
from rxbench.platforms.vm import image_dir as _vm_image_dir

VM_IMAGE = str(_vm_image_dir(config) / "rootfs.qcow2")


rule vm_image:
    output:
        VM_IMAGE,
    params:
        cfg=lambda wc: json.dumps({"platforms": config["platforms"]}, sort_keys=True),
    shell:
        "{RXBENCH} vm-image --config-json {params.cfg:q}"


# The vm lease (rxbench.lease: a detached owner holding the guests) is
# released before snakemake returns: on success and on error this process
# leaves it, and the last campaign process to leave releases it (guests
# killed, namespace and taps deleted) while snakemake waits. Its owner also
# watches this process, so a snakemake killed outright is caught within
# lease.POLL_S plus the release itself.
onsuccess:
    _leave_vm_lease()


onerror:
    _leave_vm_lease()
