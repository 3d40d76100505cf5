# Cells -> summary CSV -> figures and tables (these read only the CSV).


rule aggregate:
    input:
        CELLS,
    output:
        SUMMARY,
    log:
        f"results/{PLATFORM}/summary.log",
    shell:
        "{RXBENCH} aggregate --out {output:q} {input:q} > {log} 2>&1"


rule figure_eth_rate:
    input:
        SUMMARY,
    output:
        pdf=f"{GENERATED}/eth_rate.pdf",
        png=report(f"{GENERATED}/eth_rate.png", caption="../report/eth_rate.rst",
                   category="Ethernet"),
    log:
        f"{GENERATED}/eth_rate.log",
    shell:
        "{RXBENCH} figure --csv {input:q} --pdf {output.pdf:q} --png {output.png:q} > {log} 2>&1"


rule table_eth:
    input:
        SUMMARY,
    output:
        f"{GENERATED}/eth_table.tex",
    log:
        f"{GENERATED}/eth_table.log",
    shell:
        "{RXBENCH} table --csv {input:q} --out {output:q} > {log} 2>&1"
