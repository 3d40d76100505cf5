# One rule for every cell: its target path names it (design.md, CONTRACT).

NATIVE = ["native/build/rxb-xdp-drop", "native/build/xdp_drop.bpf.o", "native/build/rxb-gen"]


rule native:
    output:
        NATIVE,
    log:
        "native/build/make.log",
    shell:
        "make -C native > {log} 2>&1"


rule cell:
    output:
        "results/{platform}/{layer}/{stack}/{params}/rep={rep}.json",
    log:
        "results/{platform}/{layer}/{stack}/{params}/rep={rep}.log",
    input:
        ancient(NATIVE),
    wildcard_constraints:
        layer="eth|tcp",
        stack="[a-z][a-z0-9_-]*",
        params=r"[a-z_]+=[A-Za-z0-9_.+-]+(/[a-z_]+=[A-Za-z0-9_.+-]+)*",
        rep=r"[1-9][0-9]*",
    params:
        cfg=cell_config,
    shell:
        # exec: the runner's parent is snakemake, so it dies with it (PDEATHSIG)
        "rm -f {log}; exec {RXBENCH} cell {output:q} --config-json {params.cfg:q} --log {log:q}"
