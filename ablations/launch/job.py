"""What each task of a cluster job runs: `ablate.py <selection> --only <run>`, as one
torch.distributed process, and the requeue when the cluster asks the job to stop.

Slurm tasks replace torchrun: submitit's TorchDistributedEnvironment turns SLURM_PROCID,
SLURM_NTASKS, SLURM_LOCALID and the first host of SLURM_JOB_NODELIST into the RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR (and a MASTER_PORT derived from the job id) that
ablations.distributed.init_distributed reads, so the job runs exactly the code `torchrun ablate.py`
runs.

Stopping. submitit installs a SIGUSR1 handler in the job that checkpoints the callable and
requeues it; it covers the moments outside training (start-up, evaluation of a finished phase).
While a phase trains, the training loop's StopRequest replaces it: the step in flight finishes,
that exact step is checkpointed, and ablate.py returns 128 + SIGUSR1. Then rank 0 requeues the job
(submitit's requeue: `scontrol requeue <job>`, or exit 144 under the local launcher) and every
task exits without a result, as submitit's own handler does. The requeued job reruns this same
call, which resumes from the checkpoint. On SIGTERM (preemption with PreemptMode=REQUEUE,
`scontrol requeue`, or scancel) the job checkpoints and exits; Slurm itself requeues the first two.
"""

from __future__ import annotations

import signal

import submitit


class RunJob(submitit.helpers.Checkpointable):
    """Callable pickled by submitit: runs ablations.cli.main(argv) in this task.

    Checkpointable's default `checkpoint` resubmits this same call: all state lives in the run
    folder's checkpoints, so a requeued job needs nothing else."""

    def __init__(self, argv: list[str]):
        self.argv = list(argv)

    def __call__(self) -> int:
        from ablations import cli

        env = submitit.JobEnvironment()
        # Node-local ranks index the GPUs; Slurm shows each task all GPUs of its node.
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        rc = cli.main(self.argv)
        if rc == 128 + signal.SIGUSR1:
            if env.global_rank == 0:
                print(f"[requeue] SIGUSR1: checkpoint saved; requeueing job {env.job_id}", flush=True)
                env._requeue(0)  # submitit's own requeue (private, but the documented behaviour)
            raise SystemExit(rc)  # no result file: the job is not over
        if rc in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            raise SystemExit(rc)
        if rc != 0:
            raise RuntimeError(f"ablate.py {' '.join(self.argv)} exited with status {rc} (see the log above)")
        return rc
