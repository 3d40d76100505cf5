"""The presenting half after the summary CSV: cell groups and their
verdicts, computed once (groups.py: stats.csv and set.json), how stacks are
named and drawn (look.py), and the numbers the paper's text quotes
(macros.py, claims.py, numbers*.py). Figures and tables are
rxbench/plots.py and rxbench/tables.py; the command line rxbench/paper.py."""
