"""Global batch -> per-device batch x accumulation x processes, and a data order that does not
depend on that split (so a run resumes mid-epoch with another process count)."""

import pytest

from ablations.train.batching import BatchPlanError, plan_batch
from ablations.train.distributed import ShardedSampler


@pytest.mark.parametrize(
    "global_batch, world, cap, expected",
    [
        (4096, 8, 128, (128, 4)),  # in1k pretraining on one 8-GPU node
        (4096, 64, 128, (64, 1)),  # the paper's 8 nodes x 8 GPUs
        (1024, 8, None, (128, 1)),  # no cap: no accumulation
        (96, 2, 20, (16, 3)),  # the largest divisor under the cap
        (32, 1, 32, (32, 1)),
    ],
)
def test_plan_batch(global_batch, world, cap, expected):
    per_device, accum = plan_batch(global_batch, world, cap)
    assert (per_device, accum) == expected and per_device * accum * world == global_batch


def test_plan_batch_errors_name_the_fix():
    with pytest.raises(BatchPlanError, match=r"does not split evenly over 3 processes.*batch_size="):
        plan_batch(32, 3)
    with pytest.raises(BatchPlanError, match="max_batch_per_device must be >= 1"):
        plan_batch(32, 1, 0)


def update_sets(n, global_batch, world, cap, epoch=1, skip_updates=0):
    """The sample indices of each optimizer update, as the ranks' loaders would draw them."""
    per_device, accum = plan_batch(global_batch, world, cap)
    updates = n // global_batch
    shards = []
    for rank in range(world):
        s = ShardedSampler(n, rank, world, seed=3, total=updates * global_batch)
        s.set_epoch(epoch, skip=skip_updates * accum * per_device)
        shards.append(list(s))
    step = accum * per_device  # indices per rank per update
    return [
        sorted(i for shard in shards for i in shard[u * step : (u + 1) * step])
        for u in range(updates - skip_updates)
    ]


def test_each_update_trains_on_the_same_samples_for_any_split():
    one = update_sets(100, 16, 1, None)
    assert len(one) == 6 and len({i for u in one for i in u}) == 96  # whole global batches, no repeats
    for world, cap in [(2, None), (4, 2), (8, 1), (2, 4)]:
        assert update_sets(100, 16, world, cap) == one
    # Resuming after 2 updates with another process count continues with update 2.
    assert update_sets(100, 16, 4, None, skip_updates=2) == one[2:]
    assert update_sets(100, 16, 1, None, epoch=2) != one  # a new order each epoch
