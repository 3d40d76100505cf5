# Cells -> summary CSV -> statistics, figures and tables. Everything after
# `aggregate` reads only PAPER_CSV (the run's SUMMARY or a committed reference
# set's, config key paper_data: so it rebuilds without root) and calls `python -m rxbench.paper` (workflow/rxbench/paper.py).

PAPER_PY = f"env PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'workflow'))} {PY} -m rxbench.paper"
STATS = f"{GENERATED}/stats.csv"
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
GEN_TABLES = [f"{GENERATED}/{t}_table.tex" for t in ("eth", "tcp", "env", "seed", "best", "ndr")]
# the seed study's own numbers (with their source), beside ours in the seed table
SEED_CSV = str(Path(workflow.basedir) / "paper" / "data" / "seed_vm_table.csv")


rule aggregate:
    input:
        CELLS,
    output:
        SUMMARY,
    log:
        f"results/{PLATFORM}/summary.log",
    shell:
        "{RXBENCH} aggregate --out {output:q} {input:q} > {log} 2>&1"


rule stats:
    input:
        PAPER_CSV,
    output:
        report(STATS, caption="../report/stats.rst", category="Cell statistics"),
    log:
        f"{GENERATED}/stats.log",
    shell:
        "{PAPER_PY} stats --csv {input:q} --out {output:q} > {log} 2>&1"


# Which figure families the summary supports (e.g. eth_cores only when more
# than one core count was measured) is known only once SUMMARY exists: a
# checkpoint, read by planned_figures().
checkpoint figure_plan:
    input:
        PAPER_CSV,
    output:
        FIGURE_PLAN,
    log:
        f"{GENERATED}/figures.log",
    shell:
        "{PAPER_PY} plan --csv {input:q} --out {output:q} > {log} 2>&1"


# the PDF and PNG of every figure family the summary supports (an input function)
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
            PAPER_CSV,
        output:
            pdf=f"{GENERATED}/{_fig}.pdf",
            png=report(f"{GENERATED}/{_fig}.png", caption=f"../report/{_fig}.rst",
                       category=_category),
        log:
            f"{GENERATED}/{_fig}.log",
        params:
            family=_fig,
        shell:
            "{PAPER_PY} figure {params.family} --csv {input:q} --pdf {output.pdf:q}"
            " --png {output.png:q} > {log} 2>&1"


rule table:
    input:
        csv=PAPER_CSV,
        seed=SEED_CSV,
    output:
        f"{GENERATED}/{{table}}_table.tex",
    log:
        f"{GENERATED}/{{table}}_table.log",
    wildcard_constraints:
        table="eth|tcp|env|seed|best|ndr",
    shell:
        "{PAPER_PY} table {wildcards.table} --csv {input.csv:q} --out {output:q} > {log} 2>&1"
