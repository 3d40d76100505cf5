# rxbench: packet-reception benchmarks as a Snakemake workflow.
#   snakemake --cores 1                          the default campaign (local platform)
#   snakemake --cores 1 --config profile=smoke   every stack once, ~1 s each
#   snakemake --cores 1 --force results/local/eth/xdp_drop/cores=1/size=64/rep=1.json
# The rules are thin: they call the Python package in workflow/rxbench.

# (the effective configuration is resolved in workflow/rules/common.smk)
configfile: Path(workflow.basedir) / "config" / "config.yaml"

include: "workflow/rules/common.smk"
include: "workflow/rules/cells.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/vm.smk"


rule all:
    default_target: True
    input:
        NATIVE,
        SUMMARY,
        STATS,
        planned_figures,
        GEN_TABLES,
        NUMBERS,
        PAPER_PDF,
