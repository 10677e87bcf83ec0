"""The devices a command will get, as the memory plan and the preview see them: how many
processes split each global batch, and how much memory each one has. One place, so that --plan,
--dry-run, a cluster job's preview and the training itself agree."""

from __future__ import annotations

import os

from ablations.cli.launch.options import tasks_per_node
from ablations.train import distributed as D
from ablations.train import memory_plan as M

PLAN_DEVICES = 8  # --plan with nothing else given: one 8-GPU node, as the paper presets are sized
PLAN_CARD_GB = 80


def launch_devices(args) -> tuple[int, str]:
    """(processes, where that number comes from): --devices; a job's --nodes x tasks per node;
    torchrun's WORLD_SIZE; for --plan the GPUs found here (else 8); else this one process."""
    if args.devices is not None:
        return args.devices, "--devices"
    if args.launcher:
        n = tasks_per_node(args)
        return args.nodes * n, f"the job's --nodes {args.nodes} x {n} tasks per node"
    if "WORLD_SIZE" in os.environ:
        return D.env_world()[1], "WORLD_SIZE"
    if args.plan:
        found = len(M.device_memory_gib())
        return (found, "the GPUs found here") if found else (PLAN_DEVICES, "--plan's default, one 8-GPU node")
    return 1, "this one process (torchrun, --launcher or --devices for more)"


def will_use_gpu(cfg: dict) -> bool:
    """Whether the run trains on a GPU: one is here, or its preset is sized for GPUs (a preview on
    a login node, a cluster job), unless runtime.device is cpu."""
    rt = cfg["runtime"]
    return rt.get("device") != "cpu" and (bool(M.device_memory_gib()) or bool(rt.get("sized_for_gib")))


def card_text(gib: float) -> str:
    """40 -> 'a 40 GB card (39.4 GiB as it reports)'; a size that names no card -> '39.4 GiB'."""
    got = M.planned_gib(gib)
    article = "an" if f"{gib:g}".startswith(("8", "11", "18")) else "a"
    if got == round(gib, 1):
        return f"{gib:g} GiB"
    return f"{article} {gib:g} GB card ({got:g} GiB as it reports)"


def explicit_memory(args) -> tuple[float, str]:
    """(GiB per device, its source) for --plan / --device-mem: the flag, the GPU here, or 80 GB."""
    if args.device_mem is not None:
        card = card_text(args.device_mem)
        said = f"--device-mem {args.device_mem:g}" + (f", {card}" if "card" in card else "")
        return M.planned_gib(args.device_mem), said
    here = M.device_memory_gib()
    if here and not args.launcher:
        return round(min(here), 1), "this machine's smallest GPU"
    return M.planned_gib(PLAN_CARD_GB), f"--plan's default, {card_text(PLAN_CARD_GB)}"
