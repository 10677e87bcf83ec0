"""What each task of a cluster job runs: `ablate.py <selection> --only <run>`, as one
torch.distributed process, and the requeue when the cluster asks the job to stop.

Slurm tasks replace torchrun: submitit's TorchDistributedEnvironment turns SLURM_PROCID,
SLURM_NTASKS, SLURM_LOCALID and the first host of SLURM_JOB_NODELIST into the RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR (and a MASTER_PORT derived from the job id) that
ablations.train.distributed.init_distributed reads, so the job runs exactly the code `torchrun ablate.py`
runs.

Stopping. submitit installs a SIGUSR1 handler in the job that checkpoints the callable and
requeues it; it covers the job's start-up. Once ablate.py has read its command line, its
StopRequest replaces it (and puts it back on exit): outside a training step the job stops at
once (PREEMPTED_EXIT); inside one the step in flight finishes,
that exact step is checkpointed (all ranks agree on the step), and ablate.py returns PREEMPTED_EXIT.
Then rank 0 requeues the job (submitit's requeue: `scontrol requeue <job>`, or exit 144 under the
local launcher) and every task exits without a result, as submitit's own handler does. The
requeued job reruns this same call, which resumes from the checkpoint. SIGTERM stops the same way,
but when Slurm sent it to end the job (scancel) or to requeue it (preemption with
PreemptMode=REQUEUE, `scontrol requeue`), squeue no longer shows the job RUNNING and the job does
not requeue itself.
"""

from __future__ import annotations

import submitit

from ablations.store.lock import slurm_job_state
from ablations.train.interrupt import INTERRUPTED_EXIT, PREEMPTED_EXIT


class RunJob(submitit.helpers.Checkpointable):
    """Callable pickled by submitit: runs entry(argv) in this task, entry = ablations.cli.main.main
    (given by the submitter, so this layer needs no import of the command above it; submitit
    pickles a function by its module and name).

    Checkpointable's default `checkpoint` resubmits this same call: all state lives in the run
    folder's checkpoints, so a requeued job needs nothing else."""

    def __init__(self, argv: list[str], entry):
        self.argv = list(argv)
        self.entry = entry

    def __call__(self) -> int:
        env = submitit.JobEnvironment()
        # Node-local ranks index the GPUs; Slurm shows each task all GPUs of its node.
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        rc = self.entry(self.argv)
        if rc == PREEMPTED_EXIT:
            if env.global_rank == 0 and still_running(env):
                print(f"[requeue] checkpoint saved; requeueing job {env.job_id}", flush=True)
                env._requeue(0)  # submitit's own requeue (private API; what its signal handler calls)
            raise SystemExit(rc)  # no result file, as in submitit's handler: the job is not over
        if rc == INTERRUPTED_EXIT:
            raise SystemExit(rc)
        if rc != 0:
            raise RuntimeError(f"ablate.py {' '.join(self.argv)} exited with status {rc} (see the log above)")
        return rc


def still_running(env) -> bool:
    """False when Slurm is already ending this job (scancel: do not come back) or requeueing it
    (preemption, scontrol requeue); True when only the job asked to stop (SIGUSR1 before the
    time limit), so the job must requeue itself. The local launcher always requeues."""
    if env.cluster != "slurm":
        return True
    return slurm_job_state(env.job_id) == "RUNNING"
