"""The presenting half after the summary CSV: cell groups and their
verdicts (groups.py), computed once per build into stats.csv and set.json
(statsfile.py), what the figures draw without drawing (figdata.py), how
stacks are named and drawn (look.py), and the numbers the paper's text
quotes (macros.py, claims.py, numbers*.py). Figures and tables are
rxbench/plots.py and rxbench/tables.py; the command line rxbench/paper.py."""
