"""The one "did you mean" helper, shared by the model resolver and the ablation runner."""

from __future__ import annotations

import difflib


def did_you_mean(word, valid, pool=None) -> str:
    """' Did you mean X? Valid: a, b.' with X the closest of `pool` (default: `valid`) to `word`,
    compared case-insensitively (so 'b' suggests 'B'); just ' Valid: ...' when nothing is close."""
    valid = list(dict.fromkeys(str(v) for v in valid))  # each name once, in order
    lower = {str(v).lower(): str(v) for v in (pool or valid)}
    close = difflib.get_close_matches(str(word).lower(), list(lower), n=1)
    hint = f" Did you mean {lower[close[0]]!r}?" if close else ""
    return f"{hint} Valid: {', '.join(valid)}."
