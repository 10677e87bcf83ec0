"""The structure files are checked against is generated, so it cannot drift from the config:
its keys are the resolved configs' keys (the ones keys.yaml documents), the keys bounds.py gives
a range take numbers, and model flags are the model's fields a user may set."""

from ablations.study import config as C
from ablations.study import config_docs as D
from ablations.study import schema as S
from ablations.study.bounds import PHASE_SECTIONS, PHASE_SPANS, SPANS
from ablations.study.validate import USER_FLAGS


def dotted(node: S.Node, prefix: str = "") -> dict[str, S.Node]:
    out = {}
    for key, child in (node.keys or {}).items():
        out[prefix + key] = child
        if child.keys is not None and prefix + key != "model.overrides":
            out |= dotted(child, f"{prefix}{key}.")
    return out


def test_the_schema_has_exactly_the_documented_keys():
    keys = dotted(C.config_schema())
    assert set(keys) == set(D.config_keys())
    meanings = D.meanings_file()
    assert all(D.meaning_of(k, meanings) for k in keys)


def test_ranged_keys_take_numbers_and_flags_are_the_users():
    keys = dotted(C.config_schema())
    ranged = [k for k in SPANS if k in keys]
    ranged += [f"{p}.{k}" for p in PHASE_SECTIONS for k in PHASE_SPANS if f"{p}.{k}" in keys]
    assert len(ranged) > 30 and all("number" in keys[k].kinds for k in ranged)
    assert set(keys["model.overrides"].keys) == set(USER_FLAGS)
    assert S.lookup(C.config_schema(), "model.overrides.pool").kinds == {"text"}
    assert S.lookup(C.config_schema(), "pretrain.aug.rrc_scale").items.kinds == {"number"}
