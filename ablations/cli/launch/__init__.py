"""Cluster launchers for ablate.py: one submitit job per run.

    python ablate.py --table 1 --preset in1k-l --launcher slurm --nodes 8 --gpus-per-node 8 \\
        --partition learn --time 72:00:00        # 7 jobs of 64 tasks; prints job ids and returns
    python ablate.py --table 1 --preset in1k-l --status   # finished / running / queued / failed
    python ablate.py --step f --preset tiny --launcher local --wait   # the same job, on this machine

Each job runs `python ablate.py <selection> --only <run>` in every task (ablations/cli/launch/job.py),
with torch.distributed set up from Slurm's environment. The flags are declared in
ablations/cli/parser.py, checked in options.py; submit.py submits, job.py is what a task runs.
"""
