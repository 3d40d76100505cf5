#!/bin/bash
# The complete reference set at one commit (make reference-set MACHINE=name):
# the default campaign (both layers), then the ndr profile (NDR/PDR searches)
# and the cost profile (paced Ethernet cells), each run into
# results/PLATFORM/, promoted to results/reference/PLATFORM-MACHINE-PROFILE/
# and removed from results/PLATFORM/; then the three are joined into
# results/reference/PLATFORM-MACHINE/ (python -m rxbench reference --join,
# which refuses parts from different commits or sharing a cell) and the
# parts removed (the joined set keeps each part's README).
# Refuses to start on a dirty tree (a set is one commit) or over an
# unfinished run in results/PLATFORM/ (move it away first).
# usage: reference-campaign.sh BIN PLATFORM MACHINE [PROFILES...]
set -euo pipefail
bin=$1 platform=$2 machine=$3
shift 3
profiles=("$@")
[ "${#profiles[@]}" -gt 0 ] || profiles=(default ndr cost)
[[ $machine =~ ^[a-z][a-z0-9_-]*$ ]] || { echo "reference-set: MACHINE=$machine: use lower-case letters, digits, - and _" >&2; exit 2; }
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "reference-set: the working tree has uncommitted changes; commit first (a reference set is one commit)" >&2
    exit 2
fi
if [ -e "results/$platform" ]; then
    echo "reference-set: results/$platform/ exists (a run of yours?); move it away first" >&2
    exit 2
fi
name="$platform-$machine"
for p in "${profiles[@]}"; do
    [ -e "results/reference/$name-$p" ] && { echo "reference-set: results/reference/$name-$p exists" >&2; exit 2; }
done
[ -e "results/reference/$name" ] && { echo "reference-set: results/reference/$name exists" >&2; exit 2; }
parts=()
for p in "${profiles[@]}"; do
    # the target before --config: --config takes every word after it
    cmd=(--cores 1 --keep-going "results/$platform/summary.csv" --config "profile=$p" "platform=$platform")
    echo "reference-set: $p: snakemake ${cmd[*]}" >&2
    start=$(date +%s)
    "$bin/snakemake" "${cmd[@]}"
    echo "reference-set: $p took $(( $(date +%s) - start )) s" >&2
    "$bin/python" -m rxbench reference --platform "$platform" --machine "$machine-$p" \
        --command "snakemake ${cmd[*]}"
    rm -rf "results/$platform"
    parts+=("$name-$p")
done
if [ "${#parts[@]}" -gt 1 ]; then
    "$bin/python" -m rxbench reference --join "${parts[@]}" --machine "$name"
    for part in "${parts[@]}"; do rm -rf "results/reference/$part"; done
else
    mv "results/reference/${parts[0]}" "results/reference/$name"
fi
echo "reference-set: results/reference/$name; make paper REFERENCE=$name" >&2
