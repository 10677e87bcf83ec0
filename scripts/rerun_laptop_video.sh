#!/usr/bin/env bash
# Train the laptop preset's video Table 1 (MAE rows, MViTv2 supervised) and Fig. 8 (supervised
# rows), two one-thread processes side by side, then write the report.
#
#   scripts/rerun_laptop_video.sh              # seed 0: 12 runs
#   SEEDS=2 scripts/rerun_laptop_video.sh      # seeds 0 and 1 (a finished seed 0 is reused)
#
# Fig. 8's row a is Table 1's MViTv2 row (the same resolved config, trained once): the process
# that reaches it second skips it while the first trains it ([busy]), and the last two commands
# find every run finished and report it. Rerunning the script after a kill resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
args=(--preset laptop --modality video --seeds "${SEEDS:-1}" --set runtime.threads=1 --quiet)
mkdir -p runs
"$PY" ablate.py --table 1 "${args[@]}" > runs/rerun_video_table1.log 2>&1 & table1=$!
"$PY" ablate.py --fig 8 "${args[@]}" > runs/rerun_video_fig8.log 2>&1 & fig8=$!
status=0
wait "$table1" || status=$?
wait "$fig8" || status=$?
# every run is finished now (or failed above): these train what a [busy] skip left, and report
"$PY" ablate.py --table 1 "${args[@]}" 2>&1 | tee -a runs/rerun_video_table1.log || status=$?
"$PY" ablate.py --fig 8 "${args[@]}" 2>&1 | tee -a runs/rerun_video_fig8.log || status=$?
echo "logs: runs/rerun_video_{table1,fig8}.log; report: runs/report/laptop/ (exit $status)"
exit "$status"
