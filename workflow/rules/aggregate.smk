# Cells -> summary CSV -> group statistics -> figures and tables. Only the
# `stats` rule reads the summary (PAPER_CSV: the run's SUMMARY or a
# committed reference set's, config key paper_data: so it rebuilds without
# root); everything after it reads stats.csv (and set.json beside it) alone.
# The rules call `python -m rxbench.paper` (workflow/rxbench/paper.py).

PAPER_PY = f"env PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'workflow'))} {PY} -m rxbench.paper"
STATS = f"{GENERATED}/stats.csv"
SET_FACTS = f"{GENERATED}/set.json"
FIGURE_PLAN = f"{GENERATED}/figures.txt"
# figure family -> report category (workflow/rxbench/plots.py FAMILIES;
# each has its caption in workflow/report/<family>.rst)
FIGURE_FAMILIES = {
    "eth_best": "Ethernet",
    "eth_rate": "Ethernet",
    "eth_ndr": "Ethernet",
    "eth_gbps": "Ethernet",
    "eth_cores": "Ethernet",
    "eth_cpu": "Ethernet",
    "tcp_msg": "TCP",
    "tcp_conns": "TCP",
    "tcp_cpu": "TCP",
    "tcp_load": "TCP",
}
GEN_TABLES = [f"{GENERATED}/{t}_table.tex" for t in ("eth", "tcp", "env", "seed", "best", "ndr", "cost", "anchors", "platforms")] + [
    f"{GENERATED}/best.csv"]   # the supplement beside stats.csv: each stack's chosen configuration per class
# the seed study's own numbers (with their source), beside ours in the seed table
SEED_CSV = str(Path(workflow.basedir) / "paper" / "data" / "seed_vm_table.csv")
# published numbers on real hardware (with their sources), beside ours in the anchors table
ANCHORS_CSV = str(Path(workflow.basedir) / "paper" / "data" / "anchors.csv")


rule aggregate:
    input:
        CELLS,
    output:
        SUMMARY,
    log:
        f"results/{PLATFORM}/summary.log",
    shell:
        "{RXBENCH} aggregate --out {output:q} {input:q} > {log} 2>&1"


# per cell group: n, median and its bootstrap interval (once per group),
# the verdicts, each stack's best configuration and the like-with-like
# pairs (workflow/schemas/stats.schema.yaml); set.json: the data set's own facts
rule stats:
    input:
        PAPER_CSV,
    output:
        stats=report(STATS, caption="../report/stats.rst", category="Cell statistics"),
        facts=SET_FACTS,
    log:
        f"{GENERATED}/stats.log",
    shell:
        "{PAPER_PY} stats --csv {input:q} --out {output.stats:q} > {log} 2>&1"


# Which figure families the data supports (e.g. eth_cores only when more
# than one core count was measured) is known only once the statistics
# exist: a checkpoint, read by planned_figures().
checkpoint figure_plan:
    input:
        stats=STATS,
        facts=SET_FACTS,
    output:
        FIGURE_PLAN,
    log:
        f"{GENERATED}/figures.log",
    shell:
        "{PAPER_PY} plan --stats {input.stats:q} --out {output:q} > {log} 2>&1"


# the PDF and PNG of every figure family the data supports (an input function)
planned_figures = lambda wildcards: [
    f"{GENERATED}/{name}.{ext}"
    for name in Path(checkpoints.figure_plan.get().output[0]).read_text().split()
    if name in FIGURE_FAMILIES
    for ext in ("pdf", "png")
]


for _fig, _category in FIGURE_FAMILIES.items():

    rule:
        name:
            f"figure_{_fig}"
        input:
            stats=STATS,
            facts=SET_FACTS,
        output:
            pdf=f"{GENERATED}/{_fig}.pdf",
            png=report(f"{GENERATED}/{_fig}.png", caption=f"../report/{_fig}.rst",
                       category=_category),
        log:
            f"{GENERATED}/{_fig}.log",
        params:
            family=_fig,
        shell:
            "{PAPER_PY} figure {params.family} --stats {input.stats:q} --pdf {output.pdf:q}"
            " --png {output.png:q} > {log} 2>&1"


rule tables:
    input:
        stats=STATS,
        facts=SET_FACTS,
        seed=SEED_CSV,
        anchors=ANCHORS_CSV,
    output:
        GEN_TABLES,
    log:
        f"{GENERATED}/tables.log",
    params:
        gendir=lambda wildcards, output: str(Path(output[0]).parent),
    shell:
        "{PAPER_PY} tables --stats {input.stats:q} --dir {params.gendir:q} > {log} 2>&1"
