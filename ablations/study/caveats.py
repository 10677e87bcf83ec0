"""A preset's measured limits, said in one line before the runs they concern train.

A preset's `preset: {caveats: [{modality, mode, rows, says}]}` names runs (all three must match;
rows are Table 1 / Fig. 8 rows) whose result the preset is known not to carry, and says why and
what does better. ablate.py prints `says` once per command when a selected run matches; it
refuses nothing: the runs still train, so the measured limit can be reproduced.
"""

from __future__ import annotations

from ablations.study.config import Run, load_preset


def caveat_lines(preset: str, runs: list[Run]) -> list[str]:
    """The `says` of every caveat of `preset` that a run of `runs` matches, in file order."""
    caveats = (load_preset(preset).get("preset") or {}).get("caveats") or []
    return [
        str(c["says"])
        for c in caveats
        if any(
            r.modality == c.get("modality", r.modality)
            and r.config["mode"] == c.get("mode", r.config["mode"])
            and r.config["model"]["step"] in c.get("rows", [r.config["model"]["step"]])
            for r in runs
        )
    ]
