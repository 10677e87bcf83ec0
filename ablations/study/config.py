"""Resolve a preset + a table selection + ``--set`` overrides into a list of run configs.

A preset (``ablations/study/presets/<name>.yaml``) holds the full config tree of CONTRACTS.md plus
an optional overlay per modality (``video:`` / ``image:``). A table (``ablations/study/tables/``)
names the runs: Table 1 and Fig. 8 list rows of ``models/rows.yaml`` (the model's
definitions), Table 3 lists one-key changes to row f. Every value is checked before any work.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ablations.errors import ConfigError
from ablations.store.hashing import file_sha256
from ablations.study.identity import NEUTRAL_KEYS
from ablations.study.validate import MODES, PHASES, check_config  # noqa: F401  (PHASES: C.PHASES)
from models import steps
from models.hints import did_you_mean
from models.steps import ROWS_FILE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the repository (where ablate.py is)
PRESET_DIR = HERE / "presets"
TABLE_DIR = HERE / "tables"

MODALITIES = ("image", "video")
PRESET_META_KEYS = ("preset", "image", "video", "coupled")  # keys of a preset file that are not config
# Keys the selection flags own: setting them with --set would make a run's name lie.
SELECTION_KEYS = {"mode": "--mode", "model.step": "--step", "model.modality": "--modality", "seed": "--seeds"}
# Left out of run names (folder variants): how a run trains (identity.NEUTRAL_KEYS), and where its
# data lies. data.root does belong to a run's identity (ablations/study/identity.py): a run folder
# trained on other data is reported as changed, never reused.
NAME_NEUTRAL_KEYS = (*NEUTRAL_KEYS, "data.root")
# Keys whose value may be a bool or another type (grad_ckpt: bool or N blocks; compile: bool or
# "blocks"): --set leaves their type to validate.check_config.
MIXED_TYPE_KEYS = ("runtime.grad_ckpt", "runtime.compile")
# Keys every preset has, unless it sets them itself.
DEFAULTS = {
    "runtime": {
        "grad_ckpt": False,  # activation checkpointing: true (every block), false, or N (the first N blocks)
        "compile": False,  # torch.compile (inductor): true/"model" the whole model, "blocks" each block
        "plan": None,  # written by --device-mem (train/memory_plan.py): per-phase cap, checkpointing
        # the device memory (GiB) max_batch_per_device was sized for; on CUDA a device with other
        # memory gets the memory plan for its own instead (cli/main.py autoplanned). null: any device
        "sized_for_gib": None,
    },
    "pretrain": {
        "train_size": None,  # items for MAE pretraining (unlabeled); null: data.train_size
    },
    "finetune": {
        "init": None,  # a pretrained checkpoint to finetune from instead of pretraining (mode mae)
        "init_sha256": None,  # set from the file: part of the run's identity
    },
}


# ----------------------------------------------------------------------------- loading


def load_yaml(path: Path) -> dict:
    """A YAML file as a fresh dict (parsed once per process; callers may modify the copy)."""
    return copy.deepcopy(_parse(Path(path), Path(path).stat().st_mtime_ns))


@functools.cache
def _parse(path: Path, mtime_ns: int) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def list_tables() -> list[str]:
    return sorted(p.stem for p in TABLE_DIR.glob("*.yaml"))


def list_rows() -> list[str]:
    """Table 1 rows in order, as the model defines them in models/rows.yaml."""
    return steps()


def source(what: str) -> str:
    """Where a list comes from, relative to the repository: "rows" (models/rows.yaml), "tables"
    (ablations/study/tables/) or "presets" (ablations/study/presets/). --help, --list and the docs
    say it from here."""
    path = {"rows": ROWS_FILE, "tables": TABLE_DIR, "presets": PRESET_DIR}[what]
    return path.relative_to(ROOT).as_posix() + ("/" if path.is_dir() else "")


FIGURE_PREFIX = "fig"  # a table named fig<N> is a figure, chosen with --fig <N>; the others with --table


def table_flag(name: str) -> str:
    """The command line that selects a table: table1 -> "--table 1", fig8 -> "--fig 8", any other
    table file <name>.yaml -> "--table <name>"."""
    for prefix, flag in (("table", "--table"), (FIGURE_PREFIX, "--fig")):
        number = name.removeprefix(prefix)
        if name.startswith(prefix) and number.isdigit():
            return f"{flag} {number}"
    return f"--table {name}"


def is_figure(name: str) -> bool:
    """A table chosen with --fig (fig8), not --table."""
    return table_flag(name).startswith("--fig ")


def load_preset(name: str, _children: tuple[str, ...] = ()) -> dict:
    """A preset file as a dict. `preset: {extends: <other>}` starts from the other preset and
    changes only the keys it gives (which must exist there; the image/video overlays may add)."""
    if name not in list_presets():
        raise ConfigError(f"Unknown preset {name!r}.{did_you_mean(name, list_presets())}")
    preset = load_yaml(PRESET_DIR / f"{name}.yaml")
    base = (preset.get("preset") or {}).get("extends")
    if not base:
        return preset
    if base == name or base in _children:
        raise ConfigError(f"Preset {name!r} extends {base!r}, which extends it back.")
    tree = with_defaults(load_preset(base, (*_children, name)))
    for key, value in preset.items():
        if key == "preset":
            tree["preset"] = {**tree.get("preset", {}), **value}
        elif key in MODALITIES and isinstance(value, dict):
            deep_update(tree.setdefault(key, {}), value, path=f"{name}.yaml {key}.", strict=False)
        else:
            try:
                deep_update(tree, {key: value}, path="", strict=True)
            except ConfigError as e:
                raise ConfigError(f"{name}.yaml (extends {base}): {e}") from e
    return tree


def with_defaults(tree: dict) -> dict:
    """tree with DEFAULTS filled into the sections it has (in place; returned)."""
    for section, defaults in DEFAULTS.items():
        if section in tree:
            tree[section] = {**defaults, **(tree[section] or {})}
    return tree


def load_table(name: str) -> dict:
    if name not in list_tables():
        raise ConfigError(f"Unknown table {name!r}.{did_you_mean(name, list_tables())}")
    return load_yaml(TABLE_DIR / f"{name}.yaml")


def preset_modalities(preset: dict) -> list[str]:
    return list(preset.get("preset", {}).get("modalities", MODALITIES))


def preset_config(name: str, modality: str) -> dict:
    """The full config tree of a preset for one modality (base tree + that modality's overlay)."""
    preset = load_preset(name)
    if modality not in preset_modalities(preset):
        raise ConfigError(
            f"Preset {name!r} has no {modality} recipe (it has: {', '.join(preset_modalities(preset))}). "
            "Choose a preset for that modality (--list shows them)."
        )
    cfg = with_defaults({k: copy.deepcopy(v) for k, v in preset.items() if k not in PRESET_META_KEYS})
    deep_update(cfg, preset.get(modality) or {}, path="", strict=True)
    cfg["model"]["modality"] = modality
    return cfg


# ----------------------------------------------------------------------------- dotted keys


def flat_keys(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.append(key)
        if isinstance(v, dict):
            out += flat_keys(v, key + ".")
    return out


def get_dotted(tree: dict, key: str):
    node = tree
    for part in key.split("."):
        node = node[part]
    return node


def deep_update(tree: dict, overlay: dict, path: str = "", strict: bool = True) -> dict:
    """Merge overlay into tree in place; nested keys may be dotted ("mae.mask_ratio": 0.9)."""
    for k, v in overlay.items():
        if "." in k:
            head, rest = k.split(".", 1)
            deep_update(tree, {head: {rest: v}}, path, strict)
            continue
        if strict and k not in tree:
            raise ConfigError(f"Unknown key {path + k!r}.{did_you_mean(path + k, flat_keys(tree, path))}")
        if isinstance(v, dict) and isinstance(tree.get(k), dict):
            free = (path + k) == "model.overrides"  # model fields, checked by models.build
            deep_update(tree[k], v, path + k + ".", strict and not free)
        else:
            tree[k] = copy.deepcopy(v)
    return tree


def parse_sets(items: list[str]) -> dict:
    """["mae.mask_ratio=0.75", "data.root=/x"] -> {"mae.mask_ratio": 0.75, "data.root": "/x"}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set pretrain.epochs=20")
        key, raw = item.split("=", 1)
        out[key.strip()] = _number(_parse_value(key.strip(), raw)) if raw.strip() else None
    return out


def _parse_value(key: str, raw: str):
    """One --set value as YAML; ConfigError in one line (the key, the parse error, the fix) for
    text that is not YAML, a tag (safe_load builds no objects), or a value that refers to itself."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        mark = getattr(e, "problem_mark", None)
        where = f" at column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(
            f"--set {key}={raw}: not a valid YAML value ({problem}{where}); quote it as a string, "
            f"e.g. --set '{key}=\"...\"', or fix the brackets"
        ) from None
    _check_plain(key, raw, value, ())
    return value


def _check_plain(key: str, raw: str, value, parents: tuple) -> None:
    """A --set value is plain data: no alias that contains itself (a circular anchor), no YAML
    types a config cannot hold (dates, sets, binary)."""
    if isinstance(value, (list, dict)):
        if any(value is p for p in parents):
            raise ConfigError(f"--set {key}={raw}: the value refers to itself (a circular YAML anchor); "
                              "write the value out instead")  # fmt: skip
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for _, v in items:
            _check_plain(key, raw, v, (*parents, value))
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise ConfigError(f"--set {key}={raw}: a {type(value).__name__} is not a config value; "
                          f"quote it to pass text, e.g. --set '{key}=\"{raw}\"'")  # fmt: skip


def _number(value):
    """YAML 1.1 reads 1e-3 as a string (it wants 1.0e-3); take it as the float it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def check_sets(cfg: dict, sets: dict) -> None:
    """Every --set key must exist (model.overrides.* excepted) and keep its type."""
    valid = flat_keys(cfg)
    for key, value in sets.items():
        if key in SELECTION_KEYS:
            raise ConfigError(f"--set {key}: choose this with {SELECTION_KEYS[key]} instead.")
        if key.startswith("model.overrides."):
            continue
        if key == "finetune.init_sha256":
            raise ConfigError(
                "--set finetune.init_sha256: it is computed from the file; set finetune.init=<path>."
            )
        if key not in valid:
            raise ConfigError(f"Unknown key {key!r} in --set.{did_you_mean(key, _nearby(key, valid), valid)}")
        old = get_dotted(cfg, key)
        if isinstance(old, dict):
            raise ConfigError(f"--set {key}: {key} is a section; set one of its keys, e.g. {key}.<name>=...")
        if not _type_ok(old, value) and key not in MIXED_TYPE_KEYS:
            raise ConfigError(
                f"--set {key}={value!r}: expected {type(old).__name__} like {old!r}, "
                f"got {type(value).__name__}."
            )


def _nearby(key: str, valid: list[str]) -> list[str]:
    """The keys of key's section (mae.* for mae.x), or the top-level sections if it has none."""
    section = key.split(".")[0]
    inside = [k for k in valid if k.startswith(section + ".")]
    return inside or [k for k in valid if "." not in k]


def _type_ok(old, new) -> bool:
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float))
    if isinstance(old, list):
        return isinstance(new, list)
    return isinstance(new, type(old))


def config_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:6]


# ----------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Run:
    """One training run: its folder name and resolved config."""

    name: str  # e.g. table1/f/image/cpu/seed0
    table: str  # table1 | table3 | fig8
    entry: str  # a row (table1, fig8) or a Table 3 entry "group-value"
    modality: str
    preset: str
    variant: str  # the preset, plus "+<hash>" when --set changed it
    seed: int
    config: dict = field(compare=False, hash=False)

    @property
    def meta(self) -> dict:
        keys = ("name", "table", "entry", "modality", "preset", "variant", "seed")
        return {k: getattr(self, k) for k in keys} | {
            "mode": self.config["mode"],
            "row": self.config["model"]["step"],
        }


@dataclass
class Selection:
    """What the command line asked for."""

    table: str | None = None  # "table1" | "table3" | "fig8"
    step: str | None = None
    mode: str | None = None
    modality: str | None = None  # None: the preset's first (image, or video for k400-*)
    preset: str = "cpu"
    sets: dict = field(default_factory=dict)
    seeds: int = 1


def table_name(arg: str) -> str:
    """'1' -> 'table1', '3' -> 'table3', '8' (with --fig) -> 'fig8'; table names pass through."""
    names = {table_flag(t).split()[-1]: t for t in list_tables()}
    name = names.get(str(arg), str(arg))
    if name not in list_tables():
        valid = ", ".join(table_flag(t) for t in sorted(list_tables(), key=is_figure))
        raise ConfigError(f"Unknown table {arg!r}. Valid: {valid}.")
    return name


def table_entries(table: str, modality: str) -> list[tuple[str, dict]]:
    """[(entry name, {"mode", "step", "set": {dotted: value}, "scale": {dotted: factor}})] in table order."""
    spec = load_table(table)
    rows = list_rows()
    out = []
    if "rows" in spec:
        for row, info in spec["rows"].items():
            if row not in rows:
                raise ConfigError(f"{table}.yaml: unknown row {row!r}.{did_you_mean(row, rows)}")
            out.append((row, {"mode": info["mode"], "step": row, "set": {}, "scale": {}}))
    for group, gspec in (spec.get("groups") or {}).items():
        for value, info in gspec["entries"].items():
            info = info or {}
            if modality not in info.get("modalities", MODALITIES):
                continue
            scale = {
                k: (f[modality] if isinstance(f, dict) else f) for k, f in (info.get("scale") or {}).items()
            }
            entry = {"mode": spec["mode"], "step": spec["row"], "set": info.get("set") or {}, "scale": scale}
            out.append((f"{group}-{value}", entry))
    return out


def entry_changes(entry: dict, base: dict) -> dict:
    """The dotted-key values an entry sets on a base config (scales applied, ints stay ints)."""
    changes = dict(entry["set"])
    for key, factor in entry["scale"].items():
        old = get_dotted(base, key)
        changes[key] = max(1, round(old * factor)) if isinstance(old, int) else old * factor
    return changes


def build_config(preset: str, modality: str, entry: dict, sets: dict, seed: int) -> dict:
    cfg = preset_config(preset, modality)
    check_sets(cfg, sets)
    deep_update(cfg, sets)
    cfg["mode"], cfg["model"]["step"], cfg["seed"] = entry["mode"], entry["step"], seed
    changes = entry_changes(entry, cfg)
    deep_update(cfg, changes)
    apply_coupled(cfg, load_preset(preset).get("coupled") or [], keep={*sets, *changes}, name=preset)
    init = (cfg.get("finetune") or {}).get("init")
    if init:
        if cfg["mode"] != "mae":
            raise ConfigError(
                "finetune.init replaces MAE pretraining: it applies to --mode mae (Table 1 a-f, Table 3)"
            )
        cfg["finetune"]["init_sha256"] = file_sha256(init)
    return cfg


def apply_coupled(cfg: dict, rules: list, keep=(), name: str = "preset") -> None:
    """A preset's ``coupled:`` rules: settings the paper ties to other settings, e.g. the finetune
    drop path that goes with a pretraining length (Table 14: "0.2 / 0.1 (L)" at 400 / 1600 epochs).
    Each rule is ``{if: {dotted: value}, set: {dotted: value}}``; it applies when every ``if``
    value matches the resolved config (after --set and the table entry). Keys in ``keep`` (what
    --set or the entry chose explicitly) are left alone."""
    for i, rule in enumerate(rules):
        if set(rule) != {"if", "set"}:
            raise ConfigError(f"{name}.yaml coupled[{i}]: give exactly 'if:' and 'set:', got {sorted(rule)}")
        try:
            match = all(get_dotted(cfg, k) == v for k, v in rule["if"].items())
        except (KeyError, TypeError) as e:
            raise ConfigError(f"{name}.yaml coupled[{i}]: unknown key {e} in 'if:'") from e
        if match:
            free = {k: v for k, v in rule["set"].items() if not any(_overlaps(k, e) for e in keep)}
            deep_update(cfg, free, strict=True)


def _overlaps(a: str, b: str) -> bool:
    """Dotted keys a and b name the same value, or one holds the other (data.views, data.views.spatial)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def presets_own(preset: str, modality: str, key: str, value) -> bool:
    """True if --set key=value leaves the preset's config as it is (its own value), so it names no
    variant: the folder name follows the resolved config, not the --set text. A key a coupled
    rule may set is never the preset's own (setting it explicitly keeps the rule off it). Sets
    that change the config keep the name they always had (the hash of those sets)."""
    cfg = preset_config(preset, modality)
    rules = load_preset(preset).get("coupled") or []
    if any(_overlaps(key, k) for rule in rules for k in (rule.get("set") or {})):
        return False
    try:
        changed = deep_update(copy.deepcopy(cfg), {key: value}, strict=True)
    except ConfigError:
        return False
    return changed == cfg


def selected_table(sel: Selection) -> str:
    """The table a selection draws its runs from: --mode moves Table 1 <-> Fig. 8."""
    if sel.mode is not None and sel.mode not in MODES:
        raise ConfigError(f"Unknown mode {sel.mode!r}.{did_you_mean(sel.mode, MODES)}")
    table = sel.table or "table1"
    if sel.mode == "supervised" and table == "table1":
        return "fig8"  # Table 1's rows trained from scratch = Fig. 8
    if sel.mode == "mae" and table == "fig8":
        return "table1"
    if sel.mode == "supervised" and table == "table3":
        raise ConfigError("Table 3 ablates MAE pretraining; --mode supervised does not apply to it.")
    return table


def resolve(sel: Selection) -> list[Run]:
    """Expand a selection into runs. Runs whose config equals a Table 1 row (Table 3's defaults,
    Fig. 8's supervised MViTv2) share that row's folder, so they are trained once."""
    if sel.modality is None:
        sel = replace(sel, modality=preset_modalities(load_preset(sel.preset))[0])
    if sel.modality not in MODALITIES:
        raise ConfigError(f"Unknown modality {sel.modality!r}.{did_you_mean(sel.modality, MODALITIES)}")
    load_preset(sel.preset)
    if sel.seeds < 1:
        raise ConfigError("--seeds must be at least 1.")
    table = selected_table(sel)
    entries = table_entries(table, sel.modality)
    if sel.step is not None:
        if sel.step not in list_rows():
            raise ConfigError(f"Unknown row {sel.step!r}.{did_you_mean(sel.step, list_rows())}")
        entries = [(n, dict(e, mode=sel.mode or e["mode"])) for n, e in entries if n == sel.step]
        if not entries:
            raise ConfigError(f"Row {sel.step!r} is not in {table}.")
    recipe_sets = {k: v for k, v in sel.sets.items() if k not in NAME_NEUTRAL_KEYS}
    recipe_sets = {k: v for k, v in recipe_sets.items() if not presets_own(sel.preset, sel.modality, k, v)}
    if sel.sets.get("finetune.init"):  # the folder follows the checkpoint's content, not its path
        recipe_sets["finetune.init_sha256"] = file_sha256(sel.sets["finetune.init"])
    variant = sel.preset + (f"+{config_hash(recipe_sets)}" if recipe_sets else "")
    canonical = {t: dict(table_entries(t, sel.modality)) for t in ("table1", "fig8") if t in list_tables()}
    runs = []
    for s in range(sel.seeds):
        seed = preset_config(sel.preset, sel.modality)["seed"] + s
        for entry_name, entry in entries:
            cfg = build_config(sel.preset, sel.modality, entry, sel.sets, seed)
            check_config(cfg, f"{table}/{entry_name}")
            owner, owner_entry = table, entry_name
            for t, rows in canonical.items():  # share folders with identical Table 1 / Fig. 8 runs
                same = rows.get(cfg["model"]["step"])
                if same and build_config(sel.preset, sel.modality, same, sel.sets, seed) == cfg:
                    owner, owner_entry = t, cfg["model"]["step"]
                    break
            name = f"{owner}/{owner_entry}/{sel.modality}/{variant}/seed{seed}"
            runs.append(Run(name, owner, owner_entry, sel.modality, sel.preset, variant, seed, cfg))
    return list({r.name: r for r in runs}.values())  # unique, order kept
