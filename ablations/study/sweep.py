"""Sweeps: `--set mae.mask_ratio=0.4,0.6,0.8` is one run per value (Hydra multirun's comma lists);
several swept keys give one run per combination (their product).

A comma inside brackets, braces or quotes belongs to its value: `--set data.input_size=[32,32]`
is one list, `--set 'data.views={spatial: 1, temporal: 2}'` one mapping. A backslash keeps any
other comma literal: `--set data.root=/data/a\\,b` is the path "/data/a,b". A list of lists,
`--set data.input_size=[32,32],[64,64]`, sweeps two input sizes.
"""

from __future__ import annotations

import itertools

from ablations.errors import ConfigError

OPEN, CLOSE = "[{(", "]})"
CONFIRM_RUNS = 64  # a sweep of more runs trains only with --yes (a typo in a list can queue days of GPUs)


class Sweep(tuple):
    """The values of one swept --set key, in the order given."""


def split_values(key: str, raw: str) -> list[str]:
    """raw split at the commas that separate values (not bracketed, quoted or escaped)."""
    pieces, cur, depth, quote, i = [], [], 0, None, 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw) and raw[i + 1] == ",":
            cur.append(",")
            i += 2
            continue
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    pieces.append("".join(cur))
    if len(pieces) > 1 and any(not p.strip() for p in pieces):
        raise ConfigError(
            f"--set {key}={raw}: an empty value in a comma list; give values like {key}=0.4,0.6 "
            "(write \\, for a comma inside one value)."
        )
    return pieces


def points(sets: dict) -> list[tuple[dict, dict]]:
    """[(the --set values of one run, {swept key: its value})]: the product of every Sweep, in
    the order given (the first key varies slowest); [(sets, {})] without sweeps."""
    swept = [k for k, v in sets.items() if isinstance(v, Sweep)]
    out = []
    for combo in itertools.product(*(sets[k] for k in swept)):
        values = dict(zip(swept, combo))
        out.append(({**sets, **values}, values))
    return out


def point_label(sweep: dict | None) -> str:
    """A run's sweep point by its values, e.g. "mask_ratio=0.5 (baseline)" ("" outside sweeps)."""
    if not sweep:
        return ""
    values = sweep["values"]
    text = ", ".join(f"{k.split('.')[-1]}={values[k]}" for k in sweep.get("keys", values))
    return text + (" (baseline)" if values == sweep.get("baseline") else "")


def swept_keys(sets: dict) -> list[str]:
    return [k for k, v in sets.items() if isinstance(v, Sweep)]
