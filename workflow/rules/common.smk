# Configuration (config.yaml <- profile <- --config, validated), the cell
# list, and how rules call the rxbench package.
import json
import shlex
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from rxbench import RxbenchError
from rxbench import cells as rxcells
from rxbench.config import resolve
from rxbench.reference import dataset

try:
    _cfg = resolve(workflow.config_settings.overwrite_config)
except RxbenchError as e:
    raise WorkflowError(str(e)) from None
config.clear()
config.update(_cfg)

PLATFORM = config["platform"]
PY = shlex.quote(sys.executable)
RXBENCH = f"env PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'workflow'))} {PY} -m rxbench"
CELLS = rxcells.targets(config)
SUMMARY = f"results/{PLATFORM}/summary.csv"
# the data set the paper shows (config key paper_data): this run's SUMMARY, or
# a committed reference set results/reference/NAME/summary.csv of the checkout
_results = ("results" if Path(workflow.basedir).resolve() == Path.cwd().resolve()
            else str(Path(workflow.basedir) / "results"))
try:
    PAPER_CSV, GENERATED_NAME, PAPER_DATA_LABEL = dataset(config["paper_data"], PLATFORM, _results)
except RxbenchError as e:
    raise WorkflowError(str(e)) from None
if config["paper_data"] == "run":
    PAPER_CSV = SUMMARY
GENERATED = f"paper/generated/{GENERATED_NAME}"


def cell_config(wildcards):
    """What a cell's runner needs, as JSON: the common keys and its own
    layer's section (changes to other keys, or to the other layer, do not
    rerun cells)."""
    keep = ("profile", "platform", "warmup_s", "timeout_s", "platforms", wildcards.layer)
    if config.get("inventory"):
        keep += ("inventory",)
    if wildcards.layer == "eth":
        keep += ("duration_s",)
    if "search=ndr" in wildcards.params.split("/"):
        keep += ("ndr",)          # only NDR cells rerun when the search settings change
    return json.dumps({k: config[k] for k in keep}, sort_keys=True)


# the vm lease is released before snakemake returns (its onsuccess/onerror
# handlers, workflow/rules/vm.smk): the last campaign process to leave takes
# the guests down while snakemake waits
def _leave_vm_lease():
    if config.get("platform") != "vm":
        return
    import os
    import time
    from rxbench import lease as _lease
    from rxbench.util import Log
    t0 = time.monotonic()
    what = _lease.leave("vm", os.getpid(), Log())
    if what != "no lease":
        print(f"rxbench: vm lease {what} in {time.monotonic() - t0:.1f} s", file=sys.stderr)


# the campaign's cell count and estimated wall time, once, to stderr, when
# it starts (not when the paper is built from a committed reference set)
onstart:
    if config["paper_data"] == "run":
        from rxbench.estimate import banner

        print(banner(config), file=sys.stderr)
