"""Global batch -> per-device batch and gradient accumulation.

A preset's phase ``batch_size`` is the GLOBAL batch per optimizer step (the paper's: 4096 MAE,
1024 finetune, 2048 supervised). How it is split depends on where it runs, never on the recipe:
global = per_device * accum * world_size, with per_device at most ``runtime.max_batch_per_device``
(null: no cap, accum 1). The lr follows the global batch (lr = blr * global / 256), so 1, 2 or 64
processes train the same recipe.
"""

from __future__ import annotations

from ablations.data.common import repeats


class BatchPlanError(ValueError):
    """The global batch cannot be split over these processes; the message names the fix."""


def plan_batch(
    global_batch: int, world_size: int = 1, max_per_device: int | None = None, repeated: int = 1
) -> tuple[int, int]:
    """(per_device, accum) with per_device * accum * world_size == global_batch and per_device the
    largest divisor of global_batch / world_size that is <= max_per_device (fewest accumulation steps).

    repeated = R > 1 (aug.repeated: R clips per item): the batch counts clips but is split in
    items, so per_device is a multiple of R (at least one item, R clips, even above the cap).

    >>> plan_batch(4096, 8, 128)
    (128, 4)
    >>> plan_batch(96, 2, 20)
    (16, 3)
    """
    if repeated > 1:
        if global_batch % repeated:
            raise BatchPlanError(
                f"the batch {global_batch} counts clips, {repeated} per video (aug.repeated): "
                f"set <phase>.batch_size to a multiple of {repeated}"
            )
        cap = None if max_per_device is None else max(1, int(max_per_device) // repeated)
        items, accum = plan_batch(global_batch // repeated, world_size, cap)
        return items * repeated, accum
    if global_batch < 1 or world_size < 1:
        raise BatchPlanError(f"batch_size ({global_batch}) and the world size ({world_size}) must be >= 1")
    if global_batch % world_size:
        raise BatchPlanError(
            f"the global batch {global_batch} does not split evenly over {world_size} processes: use a "
            f"process count that divides it, or --set <phase>.batch_size=<a multiple of {world_size}> "
            "(that changes the recipe)"
        )
    per_rank = global_batch // world_size
    if max_per_device is None:
        return per_rank, 1
    if int(max_per_device) < 1:
        raise BatchPlanError(f"runtime.max_batch_per_device must be >= 1 or null, got {max_per_device}")
    per_device = max(d for d in range(1, min(per_rank, int(max_per_device)) + 1) if per_rank % d == 0)
    return per_device, per_rank // per_device


def describe(phase_cfg: dict, world_size: int, max_per_device: int | None) -> str:
    """One line for --dry-run and the logs: global batch, processes, per-device batch, accumulation."""
    g = int(phase_cfg["batch_size"])
    try:
        per_device, accum = plan_batch(g, world_size, max_per_device, repeats(phase_cfg.get("aug")))
    except BatchPlanError as e:
        return f"global batch {g}: {e}"
    return f"global batch {g} = {per_device} per device x {accum} accumulation x {world_size} processes"
