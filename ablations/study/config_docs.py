"""docs/configuration.md, generated from the config schema, so it cannot go stale: every key of a
resolved config with its meaning (ablations/study/keys.yaml), its default (the cpu preset's), the
presets that set it otherwise, and whether it is part of a run's identity (identity.NEUTRAL_KEYS).

    python -m ablations.study.config_docs            # (re)writes docs/configuration.md
    python -m ablations.study.config_docs --check    # exit 1 when the page or keys.yaml is stale

A new config key needs a line in keys.yaml; tests/test_config_docs.py fails until it has one and
the page is regenerated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ablations.errors import ConfigError
from ablations.study import config as C
from ablations.study.identity import ABSENT_WHEN_NULL, NEUTRAL_KEYS

KEYS_FILE = C.HERE / "keys.yaml"
PAGE = C.ROOT / "docs" / "configuration.md"
DEFAULT_PRESET = "cpu"
PHASE = "<phase>."  # keys.yaml: "<phase>.KEY" is KEY of every training phase section
PHASE_SECTIONS = ("pretrain", "finetune", "supervised")
FROM_SELECTION = {"mode": "the table's (--mode)", "model.step": "--step", "model.modality": "--modality"}


def meanings_file(path: Path = KEYS_FILE) -> dict[str, str]:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def resolved_configs() -> list[dict]:
    """Resolved run configs that hold every key: the default preset's Table 1 rows f (mae) and
    mvitv2 (supervised), image and video, then every preset's tree for each of its modalities."""
    configs = []
    for modality in C.MODALITIES:
        for step in ("f", "mvitv2"):
            sel = C.Selection(step=step, modality=modality, preset=DEFAULT_PRESET)
            configs += [run.config for run in C.resolve(sel)]
    for preset in C.list_presets():
        for modality in C.preset_modalities(C.load_preset(preset)):
            configs.append(C.preset_config(preset, modality))
    return configs


def config_keys(configs: list[dict] | None = None) -> list[str]:
    """Every dotted key of the configs, in the order of the first config that has it."""
    keys: dict[str, None] = {}
    for cfg in resolved_configs() if configs is None else configs:
        keys |= dict.fromkeys(C.flat_keys(cfg))
    return list(keys)


def meaning_of(key: str, meanings: dict[str, str]) -> str | None:
    if key in meanings:
        return meanings[key]
    section, _, rest = key.partition(".")
    if section in PHASE_SECTIONS and rest:
        return meanings.get(PHASE + rest)
    return None


def problems(keys: list[str], meanings: dict[str, str]) -> list[str]:
    """What keys.yaml lacks (a key without a meaning) or has too many (a meaning without a key)."""
    out = [f"{k}: no meaning in {KEYS_FILE.name}" for k in keys if meaning_of(k, meanings) is None]
    for name in meanings:
        if name.startswith(PHASE):
            used = any(f"{s}.{name.removeprefix(PHASE)}" in keys for s in PHASE_SECTIONS)
        else:
            used = name in keys
        if not used:
            out.append(f"{name}: in {KEYS_FILE.name}, but no config has this key")
    return out


def neutral(key: str) -> bool:
    return any(key == n or key.startswith(n + ".") for n in NEUTRAL_KEYS)


def identity(key: str, keys: list[str]) -> str:
    """Whether a key is part of a run's identity, in words."""
    below = [k for k in keys if k.startswith(key + ".")]
    if below:
        states = {neutral(k) for k in below}
        return "no" if states == {True} else "yes" if states == {False} else "some keys (below)"
    if neutral(key):
        return "no"
    if key in C.SELECTION_KEYS:
        return f"yes (set by {C.SELECTION_KEYS[key]})"
    if key in ABSENT_WHEN_NULL:
        return "yes (left out while null)"
    if key == "data.root":
        return "yes (absolute path + a fingerprint of its files); not in the folder name"
    return "yes"


def show(value) -> str:
    if value is KeyError:
        return "unset"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    text = text.removesuffix("\n...").strip()
    return "`" + text.replace("|", "\\|") + "`"


def lookup(cfg: dict, key: str):
    try:
        return C.get_dotted(cfg, key)
    except (KeyError, TypeError):
        return KeyError


def preset_trees() -> dict[str, dict[str, dict]]:
    """{preset: {modality: its config tree}}."""
    return {
        p: {m: C.preset_config(p, m) for m in C.preset_modalities(C.load_preset(p))} for p in C.list_presets()
    }


def default_text(key: str, trees: dict) -> str:
    if key in FROM_SELECTION:
        return FROM_SELECTION[key]
    cpu = trees[DEFAULT_PRESET]
    image, video = (lookup(cpu.get(m, {}), key) for m in C.MODALITIES)
    text = show(image)
    return text if video in (image, KeyError) else f"{text} (video: {show(video)})"


def others_text(key: str, trees: dict) -> str:
    """The presets whose value differs from the default preset's (same modality), with it."""
    if key in FROM_SELECTION:
        return ""
    cpu, out = trees[DEFAULT_PRESET], []
    for preset, per in trees.items():
        if preset == DEFAULT_PRESET:
            continue
        diffs = {m: lookup(cfg, key) for m, cfg in per.items() if lookup(cfg, key) != lookup(cpu[m], key)}
        if not diffs:
            continue
        values = list(diffs.values())
        if len(diffs) == len(per) and all(v == values[0] for v in values):
            out.append(f"{preset}: {show(values[0])}")
        else:
            out += [f"{preset} ({m}): {show(v)}" for m, v in diffs.items()]
    return "; ".join(out)


INTRO = """\
# Configuration

<!-- Generated by `python -m ablations.study.config_docs`; do not edit by hand. Meanings:
ablations/study/keys.yaml; values: the preset files; identity: ablations/study/identity.py. -->

Every run is one nested config: a preset (`{presets}<name>.yaml`, chosen with
`--preset`; keys it leaves out come from `ablations/study/config.py` DEFAULTS), its `image:` /
`video:` overlay, the table entry (the row's mode and model, or a Table 3 change), then `--set`
overrides: dotted keys, values parsed as YAML, e.g. `--set pretrain.epochs=20 mae.mask_ratio=0.75`.
An unknown key or a value of the wrong type is refused before any work.
`python ablate.py --step f --dry-run` prints a run's resolved config. A phase section
(`pretrain`, `finetune`, `supervised`) is used by the modes that train it: `mae` pretrains and
finetunes, `supervised` trains from scratch.

Columns:

- **default**: the value in the default preset, `{default}` (image; "video: ..." where its video
  overlay sets another).
- **other presets**: the presets whose value differs from `{default}`'s for the same modality.
- **identity**: *yes* when the key is part of a run's identity. A finished run folder is reused,
  and an unfinished one resumed, only when its stored identity (`identity.json`) equals the one
  asked for; a changed identity key is reported as `[changed]` (rerun with `--force` to retrain).
  A `--set` of an identity key also gives the runs their own folder variant, `<preset>+<hash>`
  (except `data.root`). *no*: where or how a run trains, not what it learns
  (`ablations/study/identity.py`, NEUTRAL_KEYS); changing it reuses and resumes the same run.
"""


def page(keys: list[str] | None = None, meanings: dict[str, str] | None = None) -> str:
    """The Markdown of docs/configuration.md (ConfigError when keys.yaml does not fit the keys)."""
    keys = config_keys() if keys is None else keys
    meanings = meanings_file() if meanings is None else meanings
    if bad := problems(keys, meanings):
        raise ConfigError(f"{KEYS_FILE}: " + "; ".join(bad))
    trees = preset_trees()
    head = "| key | meaning | default | other presets | identity |\n|---|---|---|---|---|\n"

    def row(key: str) -> str:
        cells = [f"`{key}`", meaning_of(key, meanings), default_text(key, trees)]
        cells += [others_text(key, trees), identity(key, keys)]
        if any(k.startswith(key + ".") for k in keys):  # a sub-section: its keys follow
            cells[2:4] = ["see below", ""]
        return "| " + " | ".join(c.replace("\n", " ") for c in cells) + " |\n"

    sections = [k for k in keys if "." not in k and any(s.startswith(k + ".") for s in keys)]
    text = [INTRO.format(presets=C.source("presets"), default=DEFAULT_PRESET)]
    text.append(
        "\n## Top level\n\n" + head + "".join(row(k) for k in keys if "." not in k and k not in sections)
    )
    for section in sections:
        text.append(f"\n## `{section}`\n\n{meaning_of(section, meanings)}\n\n{head}")
        text += [row(k) for k in keys if k.startswith(section + ".")]
    return "".join(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ablations.study.config_docs", description=__doc__.split("\n")[0]
    )
    p.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md is stale")
    p.add_argument(
        "--out", type=Path, default=PAGE, help=f"where to write (default: {PAGE.relative_to(C.ROOT)})"
    )
    args = p.parse_args(argv)
    try:
        text = page()
    except ConfigError as e:
        print(f"config_docs: error: {e}", file=sys.stderr)
        return 1
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is stale: run python -m ablations.study.config_docs", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
