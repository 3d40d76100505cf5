# The paper: numbers.tex (every number the text quotes, and the platform's
# folder of figures and tables) and paper/paper.pdf by latexmk
# (paper/latexmkrc). `snakemake --cores 1 paper` builds it, and everything
# it needs, from PAPER_CSV alone (the run's summary, paper_data: run, or a
# committed reference set's, paper_data: reference/NAME), through the group
# statistics (rule stats): numbers.tex reads only those.

NUMBERS = "paper/generated/numbers.tex"
PAPER_PDF = "paper/paper.pdf"


# the paper's own measurements of the sender's turn (workflow/rxbench/present/numbers_data.py)
PAPER_DATA_CSVS = [str(Path(workflow.basedir) / "paper" / "data" / f)
                   for f in ("tcp_turns.csv", "tcp_interleave.csv")]


rule numbers:
    input:
        stats=STATS,
        facts=SET_FACTS,
        data=PAPER_DATA_CSVS,
    output:
        NUMBERS,
    log:
        f"{GENERATED}/numbers.log",
    params:
        gendir=f"generated/{GENERATED_NAME}",
        dataset=PAPER_DATA_LABEL,
    shell:
        "{PAPER_PY} numbers --stats {input.stats:q} --out {output:q} --gendir {params.gendir:q}"
        " --dataset {params.dataset:q} > {log} 2>&1"


# the sources are the checkout's (also with `snakemake -d ELSEWHERE`); the
# generated files and the PDF are in the working directory
PAPER_SRC = Path(workflow.basedir) / "paper"


rule paper:
    input:
        tex=PAPER_SRC / "paper.tex",
        bib=PAPER_SRC / "refs.bib",
        rc=PAPER_SRC / "latexmkrc",
        numbers=NUMBERS,
        stats=STATS,       # not read by LaTeX: so `paper` leaves everything the report shows
        tables=GEN_TABLES,
        figures=planned_figures,
    output:
        report(PAPER_PDF, caption="../report/paper.rst", category="Paper"),
    log:
        "paper/build/latexmk.log",
    shell:
        "{PAPER_PY} pdf --paper-dir paper --source-dir {PAPER_SRC:q} --log {log:q}"
