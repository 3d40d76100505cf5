# One rule for every cell: its target path names it (docs/results.md).

# the native tools, built in the checkout whatever the working directory.
# Cells do not take them as inputs: then the figures, tables and paper can be
# rebuilt from committed results on a machine that never built them (no
# root, no compiler), and a rebuilt tool does not invalidate measured cells.
# `rule all` asks for them, first (priority), and a cell whose tool is
# missing fails with "run make -C native". The stacks' and generators' tools
# come from the stack registry (each stack module names its own); the
# runner's own are the host probe and the counters reader.
from rxbench.stacks import registry as rxstacks

NATIVE_DIR = Path(workflow.basedir) / "native"
NATIVE = [str(NATIVE_DIR / "build" / f) for f in (
    *rxstacks.native_tools(), "rxb-pingpong", "rxb-counters")]


rule native:
    output:
        NATIVE,
    params:
        dir=NATIVE_DIR,
    priority: 100
    shell:
        "make -C {params.dir:q}"


rule cell:
    output:
        "results/{platform}/{layer}/{stack}/{params}/rep={rep}.json",
    log:
        "results/{platform}/{layer}/{stack}/{params}/rep={rep}.log",
    wildcard_constraints:
        # a platform is one path level, never "reference" (refused below)
        platform=r"(?!reference/)[a-z][a-z0-9_-]*",
        layer="eth|tcp",
        stack="[a-z][a-z0-9_-]*",
        params=r"[a-z_]+=[A-Za-z0-9_.+-]+(/[a-z_]+=[A-Za-z0-9_.+-]+)*",
        rep=r"[1-9][0-9]*",
    params:
        cfg=cell_config,
    shell:
        # exec: the runner's parent is snakemake, so it dies with it (PDEATHSIG)
        "rm -f {log}; exec {RXBENCH} cell {output:q} --config-json {params.cfg:q} --log {log:q}"


# results/reference/ holds the committed reference sets: no campaign, smoke
# run or --force of a cell writes there. Asking for a file there as a target
# stops while the DAG is built, before anything is deleted or run (cells.parse
# gives the reason; the runner refuses such a path too).
def _refuse_reference(wildcards):
    try:
        rxcells.parse(f"results/reference/{wildcards.path}.json", config)
    except RxbenchError as e:
        raise WorkflowError(str(e)) from None
    raise WorkflowError(f"results/reference/{wildcards.path}.json is not a cell")


rule refuse_reference:
    input:
        _refuse_reference,
    output:
        "results/reference/{path}.json",
    shell:
        "false"
