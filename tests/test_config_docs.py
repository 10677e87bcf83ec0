"""docs/configuration.md cannot go stale: every key of a resolved config has a meaning in
ablations/study/keys.yaml and a row on the page, and the committed page is the generated one
(python -m ablations.study.config_docs regenerates it)."""

import pytest

from ablations.errors import ConfigError
from ablations.study import config as C
from ablations.study import config_docs as D


def resolved(modality: str, step: str) -> dict:
    (run,) = C.resolve(C.Selection(step=step, modality=modality, preset="cpu"))
    return run.config


@pytest.mark.parametrize("modality", C.MODALITIES)
@pytest.mark.parametrize("step, mode", [("f", "mae"), ("mvitv2", "supervised")])
def test_every_key_of_a_resolved_config_is_on_the_page_with_its_meaning(modality, step, mode):
    cfg = resolved(modality, step)
    assert cfg["mode"] == mode and cfg["model"]["modality"] == modality
    meanings, text = D.meanings_file(), D.PAGE.read_text()
    missing_meaning = [k for k in C.flat_keys(cfg) if not D.meaning_of(k, meanings)]
    assert not missing_meaning, f"add these keys to {D.KEYS_FILE}: {missing_meaning}"
    missing_row = [k for k in C.flat_keys(cfg) if f"| `{k}` |" not in text and f"## `{k}`" not in text]
    assert not missing_row, f"{D.PAGE} lacks {missing_row}: run python -m ablations.study.config_docs"


def test_the_committed_page_is_the_generated_one():
    assert D.PAGE.read_text() == D.page(), "stale: run python -m ablations.study.config_docs"
    assert D.main(["--check"]) == 0


def test_every_meaning_names_a_key_of_some_preset():
    assert D.problems(D.config_keys(), D.meanings_file()) == []


def test_a_key_without_a_meaning_or_a_meaning_without_a_key_is_refused(tmp_path, capsys):
    keys, meanings = D.config_keys(), D.meanings_file()
    assert D.problems([*keys, "mae.new_knob"], meanings) == ["mae.new_knob: no meaning in keys.yaml"]
    stale = {**meanings, "mae.old_knob": "gone", "<phase>.old": "gone"}
    assert D.problems(keys, stale) == [
        "mae.old_knob: in keys.yaml, but no config has this key",
        "<phase>.old: in keys.yaml, but no config has this key",
    ]
    with pytest.raises(ConfigError, match="mae.new_knob: no meaning"):
        D.page([*keys, "mae.new_knob"], meanings)
    out = tmp_path / "configuration.md"
    out.write_text("# hand-edited\n")
    assert D.main(["--check", "--out", str(out)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert D.main(["--out", str(out)]) == 0 and out.read_text() == D.page()


def test_the_page_shows_defaults_other_presets_and_identity():
    text = D.PAGE.read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("| `mae.mask_ratio` |"))
    assert "| `0.6` (video: `0.9`) |" in row and row.endswith("| yes |")
    row = next(ln for ln in text.splitlines() if ln.startswith("| `runtime.max_batch_per_device` |"))
    assert "in1k-b: `128`" in row and row.endswith("| no |")  # neutral: not part of the identity
    for key in ("data.num_workers", "runtime.grad_ckpt", "finetune.init"):
        assert next(ln for ln in text.splitlines() if ln.startswith(f"| `{key}` |")).endswith("| no |")
