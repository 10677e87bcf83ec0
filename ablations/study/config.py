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
from ablations.study import schema
from ablations.study import sources as S
from ablations.study import sweep as W
from ablations.study import table_rows as T
from ablations.study.identity import NEUTRAL_KEYS
from ablations.study.validate import MODES, PHASES, check_config, fixed_classes  # noqa: F401  (C.PHASES)
from ablations.study.yaml_files import load_yaml
from models import steps
from models.hints import did_you_mean
from models.steps import ROWS_FILE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the repository (where ablate.py is)
PRESET_DIR = HERE / "presets"
TABLE_DIR = HERE / "tables"

MODALITIES = ("image", "video")
PRESET_META_KEYS = (
    "name",
    "preset",
    "image",
    "video",
    "coupled",
)  # keys of a preset file that are not config
# a preset file's `preset:` section
PRESET_SECTION_KEYS = ("description", "modalities", "extends", "gpus", "caveats")
PAPER_TABLES = ("table1", "table3", "fig8")  # the paper's: --mode moves between table1 and fig8
# Keys the selection flags own: setting them with --set would make a run's name lie.
SELECTION_KEYS = {"mode": "--mode", "model.step": "--step", "model.modality": "--modality", "seed": "--seeds"}
# Keys the harness writes (the checkpoint's hash, the memory plan of --device-mem): never set by
# hand, so never listed as a choice.
COMPUTED_KEYS = ("finetune.init_sha256", "runtime.plan")
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


def list_presets() -> list[str]:
    return S.builtin_names(S.PRESET_DIR)


def list_tables() -> list[str]:
    return S.builtin_names(S.TABLE_DIR)


def list_rows() -> list[str]:
    """Table 1 rows in order, as the model defines them in models/rows.yaml."""
    return steps()


def source(what: str) -> str:
    """Where a list comes from, relative to the repository: "rows" (models/rows.yaml), "tables"
    (ablations/study/tables/) or "presets" (ablations/study/presets/). --help, --list and the docs
    say it from here."""
    path = {"rows": ROWS_FILE, "tables": TABLE_DIR, "presets": PRESET_DIR}[what]
    return path.relative_to(ROOT).as_posix() + ("/" if path.is_dir() else "")


def source_of(table: str) -> str:
    """A built-in table's file, relative to the repository (for messages)."""
    return f"{source('tables')}{table}.yaml"


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


@functools.cache
def config_schema() -> schema.Node:
    """The structure of a config tree, from the built-in preset files (study/schema.py)."""
    trees = []
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        tree = load_yaml(path)
        trees.append(with_defaults({k: v for k, v in tree.items() if k not in PRESET_META_KEYS}))
        trees += [tree[m] for m in MODALITIES if isinstance(tree.get(m), dict)]
    return schema.config_node(trees, T.flags_node())


# A measured limit of a preset, said in one line before its matching runs train (ablations/study/caveats.py).
CAVEAT = schema.node(
    "mapping",
    keys={"modality": schema.TEXT, "mode": schema.TEXT, "rows": schema.node("list", items=schema.TEXT),
          "says": schema.TEXT},
    example="caveats: [{modality: video, mode: mae, rows: [a, b], says: ...}]",
)  # fmt: skip


@functools.cache
def preset_schema() -> schema.Node:
    """A preset file: the config tree, its `preset:` section, image/video overlays, coupled rules."""
    config, text = config_schema(), schema.TEXT
    overlay = replace(config, root=True, kinds=frozenset({"mapping", "null"}))
    section = {
        "description": text,
        "modalities": schema.node("list", items=schema.node("text"), example="modalities: [image, video]"),
        "extends": schema.node("text", example="extends: cpu"),
        "gpus": schema.node("number", example="gpus: 8"),
        "caveats": schema.node("list", items=CAVEAT, example=CAVEAT.example),
    }
    assert set(section) == set(PRESET_SECTION_KEYS)
    rule = schema.node("mapping", keys={"if": overlay, "set": overlay}, example="{if: {...}, set: {...}}")
    meta = {"name": text, "preset": schema.node("mapping", "null", keys=section), "image": overlay,
            "video": overlay, "coupled": schema.node("list", "null", items=rule)}  # fmt: skip
    assert set(meta) == set(PRESET_META_KEYS)
    hints = {k: f"it belongs in the preset's own section: preset: {{{k}: ...}}." for k in PRESET_SECTION_KEYS}
    return replace(config, keys={**config.keys, **meta}, key_hints=hints)


def load_preset(ref: str, _children: tuple[str, ...] = (), _relative_to: Path | None = None) -> dict:
    """A preset (a built-in name or a YAML file) as a dict. `preset: {extends: <other>}` starts
    from the other preset (a built-in name, or a file relative to this one) and changes only the
    keys it gives (which must exist there; the image/video overlays may add)."""
    src = S.preset_source(ref, _relative_to)
    name = src.name if src.builtin else str(src.path)
    tree = load_yaml(src.path)
    schema.check(tree, preset_schema(), f"{name}.yaml" if src.builtin else name)
    preset = {k: v for k, v in tree.items() if k != "name"}
    for key in preset.get("preset") or {}:
        if key not in PRESET_SECTION_KEYS:
            raise ConfigError(f"{name}: unknown key 'preset.{key}'.{did_you_mean(key, PRESET_SECTION_KEYS)}")
    base = (preset.get("preset") or {}).get("extends")
    if not base:
        if not src.builtin:
            check_user_preset(preset, name)
        return _with_modalities(preset, name)
    if str(src.path) in _children:
        raise ConfigError(f"Preset {name!r} extends {base!r}, which extends it back.")
    tree = with_defaults(load_preset(base, (*_children, str(src.path)), src.path))
    for key, value in preset.items():
        if key == "preset":
            tree["preset"] = {**tree.get("preset", {}), **value}
        elif key in MODALITIES and isinstance(value, dict):
            deep_update(tree.setdefault(key, {}), value, path=f"{name}.yaml {key}.", strict=False)
        else:
            try:
                deep_update(tree, {key: value}, path="", strict=True)
            except ConfigError as e:
                label = f"{name}.yaml" if src.builtin else name
                raise ConfigError(f"{label} (extends {base}): {e}. Fix the key in the file.") from e
    return _with_modalities(tree, name)


def _with_modalities(preset: dict, name: str) -> dict:
    """preset, once its `preset.modalities` is checked: one or more of image, video."""
    given = preset_modalities(preset)
    if not given or any(m not in MODALITIES for m in given):
        raise ConfigError(f"{name}: preset.modalities={given!r}: give one or more of {', '.join(MODALITIES)}")
    return preset


def check_user_preset(preset: dict, label: str) -> None:
    """A user preset without `extends:` holds the whole tree: no key missing, none unknown."""
    known = {k for p in list_presets() for k in flat_keys(_config_part(with_defaults(load_preset(p))))}
    have = flat_keys(_config_part(with_defaults(copy.deepcopy(preset))))
    for key in have:
        if key not in known and not key.startswith("model.overrides."):
            raise ConfigError(
                f"{label}: unknown key {key!r}.{did_you_mean(key, _nearby(key, sorted(known)))}"
            )
    cpu = flat_keys(_config_part(with_defaults(load_preset("cpu"))))
    missing = [k for k in cpu if k not in have and not k.startswith("bench")]
    if missing:
        raise ConfigError(
            f"{label}: missing key {missing[0]!r} ({len(missing)} missing). Give the whole tree, or start "
            "from a built-in and give only the changes: `preset: {extends: cpu}`."
        )


def _config_part(tree: dict) -> dict:
    return {k: v for k, v in tree.items() if k not in PRESET_META_KEYS}


def with_defaults(tree: dict) -> dict:
    """tree with DEFAULTS filled into the sections it has (in place; returned)."""
    for section, defaults in DEFAULTS.items():
        if section in tree:
            tree[section] = {**defaults, **(tree[section] or {})}
    return tree


def load_table(ref: str) -> dict:
    """A table (a built-in name or a YAML file), checked (table_rows.check_table)."""
    src = S.table_source(ref)
    spec = load_yaml(src.path)
    schema.check(spec, table_schema(), table_label(src))
    T.check_table(spec, table_label(src))
    return spec


@functools.cache
def table_schema() -> schema.Node:
    return T.table_node(config_schema(), T.flags_node())


def table_label(src: S.Source) -> str:
    """How errors name a table: its built-in file name, or the user file's path."""
    return f"{src.name}.yaml" if src.builtin else str(src.path)


def preset_modalities(preset: dict) -> list[str]:
    return list((preset.get("preset") or {}).get("modalities", MODALITIES))


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
    """["mae.mask_ratio=0.75", "data.root=/x"] -> {"mae.mask_ratio": 0.75, "data.root": "/x"};
    a comma list sweeps: "mae.mask_ratio=0.4,0.6" -> {"mae.mask_ratio": Sweep((0.4, 0.6))}
    (study/sweep.py)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set pretrain.epochs=20")
        key, raw = item.split("=", 1)
        key = key.strip()
        values = [
            _number(_parse_value(key, piece)) if piece.strip() else None for piece in W.split_values(key, raw)
        ]
        value = values[0] if len(values) == 1 else W.Sweep(values)
        if key in out and W.Sweep in (type(out[key]), type(value)):  # one would silently drop the other
            raise ConfigError(
                f"--set {key} is given twice ({_text(out[key])}, then {_text(value)}) and one of them "
                f"sweeps it: give it once, e.g. --set {key}={_text(value)}."
            )
        out[key] = value
    return out


def _text(value) -> str:
    """A --set value as it is typed (a sweep as its comma list)."""
    items = list(value) if isinstance(value, W.Sweep) else [value]
    return ",".join(json.dumps(v) if isinstance(v, (list, dict)) else str(v) for v in items)


def _line(text: str) -> str:
    """Command-line text in a one-line message: control characters (a pasted newline) escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


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
            f"--set {_line(key)}={_line(raw)}: not a valid YAML value ({problem}{where}); quote it as a "
            f"string, e.g. --set '{_line(key)}=\"...\"', or fix the brackets"
        ) from None
    _check_plain(key, raw, value, ())
    return value


def _check_plain(key: str, raw: str, value, parents: tuple) -> None:
    """A --set value is plain data: no alias that contains itself (a circular anchor), no YAML
    types a config cannot hold (dates, sets, binary)."""
    said = f"--set {_line(key)}={_line(raw)}"
    if isinstance(value, (list, dict)):
        if any(value is p for p in parents):
            raise ConfigError(f"{said}: the value refers to itself (a circular YAML anchor); "
                              "write the value out instead")  # fmt: skip
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for _, v in items:
            _check_plain(key, raw, v, (*parents, value))
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise ConfigError(f"{said}: a {type(value).__name__} is not a config value; "
                          f"quote it to pass text, e.g. --set '{_line(key)}=\"{_line(raw)}\"'")  # fmt: skip


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
        if key == "runtime.plan" or key.startswith("runtime.plan."):
            raise ConfigError(f"--set {key}: the memory plan is computed; give --device-mem GIB instead.")
        if key not in valid:
            shown = [k for k in _nearby(key, valid) if k not in SELECTION_KEYS and k not in COMPUTED_KEYS]
            pool = [k for k in valid if k not in COMPUTED_KEYS]  # a selection key is told its flag
            raise ConfigError(f"Unknown key {key!r} in --set.{did_you_mean(key, shown, pool)}")
        old = get_dotted(cfg, key)
        if isinstance(old, dict):
            raise ConfigError(f"--set {key}: {key} is a section; set one of its keys, e.g. {key}.<name>=...")
        if not _type_ok(old, value) and key not in MIXED_TYPE_KEYS:
            raise ConfigError(
                f"--set {key}={value!r}: expected {type(old).__name__} like {old!r}, "
                f"got {type(value).__name__}."
            )
        schema.check(value, schema.lookup(config_schema(), key) or schema.ANY, "--set", key)


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
    table: str  # table1 | table3 | fig8 | loo | one | a user table's name
    entry: str  # a row (table1, fig8), a Table 3 entry "group-value", an inline row
    modality: str
    preset: str  # the preset's name (a user file's `name:` or stem)
    variant: str  # the preset, plus "+<hash>" when --set changed it
    seed: int
    config: dict = field(compare=False, hash=False)
    sweep: dict | None = field(default=None, compare=False, hash=False)  # {"id", "values": {key: value}}

    @property
    def meta(self) -> dict:
        keys = ("name", "table", "entry", "modality", "preset", "variant", "seed")
        return {k: getattr(self, k) for k in keys} | {
            "mode": self.config["mode"],
            "row": self.config["model"]["step"],
            "overrides": dict(self.config["model"].get("overrides") or {}),
            "sweep": self.sweep,
        }


@dataclass(frozen=True)
class Refused:
    """A table entry validation refuses, in a table that explains instead of failing (refused: explain)."""

    table: str
    entry: str
    modality: str
    reason: str


@dataclass
class Selection:
    """What the command line asked for."""

    table: str | None = None  # "table1" | "table3" | "fig8" | a built-in table name | a table file
    step: str | None = None
    mode: str | None = None
    modality: str | None = None  # None: the preset's first (image, or video for k400-*)
    preset: str = "cpu"  # a built-in name or a preset file
    sets: dict = field(default_factory=dict)  # values may be sweep.Sweep (several runs)
    seeds: int = 1


def table_name(arg: str) -> str:
    """'1' -> 'table1', '3' -> 'table3', '8' (with --fig) -> 'fig8'; built-in names pass through;
    a table file stays its path (checked here: exit 2 before any work)."""
    if S.is_path(arg):
        load_table(arg)
        return str(arg)
    name = S.TABLE_ALIASES.get(str(arg), str(arg))
    if name not in list_tables():
        valid = ", ".join(table_flag(t) for t in sorted(list_tables(), key=is_figure))
        raise ConfigError(f"Unknown table {arg!r}. Valid: {valid}, or a table file: --table ./my_table.yaml.")
    return name


def table_entries(table: str, modality: str) -> list[tuple[str, dict]]:
    """[(entry name, {"mode", "step", "model": {flag: value}, "set": {dotted: value},
    "scale": {dotted: factor}, "component"})] in table order (study/table_rows.py)."""
    return T.table_entries(load_table(table), modality, table_label(S.table_source(table)))


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
    if entry.get("model"):  # an inline row's flags win over the preset's and --set's overrides
        cfg["model"]["overrides"] = {**(cfg["model"].get("overrides") or {}), **entry["model"]}
    changes = entry_changes(entry, cfg)
    deep_update(cfg, changes)
    fixed = fixed_classes(cfg["data"].get("name"))
    if fixed is not None and "data.num_classes" not in {*sets, *changes}:
        cfg["data"]["num_classes"] = fixed  # CIFAR-100 trains 100 classes: the dry run says so
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
    return resolve_all(sel)[0]


def resolve_all(sel: Selection) -> tuple[list[Run], list[Refused]]:
    """Expand a selection into runs (one per entry, seed and sweep point), and the entries a table
    with `refused: explain` leaves out, with why. Runs whose config equals a Table 1 row (Table
    3's defaults, Fig. 8's supervised MViTv2, an inline row equal to a built-in one) share that
    row's folder, so they are trained once."""
    if sel.modality is None:
        sel = replace(sel, modality=preset_modalities(load_preset(sel.preset))[0])
    if sel.modality not in MODALITIES:
        raise ConfigError(f"Unknown modality {sel.modality!r}.{did_you_mean(sel.modality, MODALITIES)}")
    preset = S.preset_source(sel.preset)
    load_preset(sel.preset)
    if sel.seeds < 1:
        raise ConfigError("--seeds must be at least 1.")
    table = selected_table(sel)
    source = S.table_source(table)
    spec = load_table(table)
    entries = selected_entries(sel, table, source)
    check_swept_entries(sel, entries, source)
    canonical = {t: dict(table_entries(t, sel.modality)) for t in ("table1", "fig8") if t in list_tables()}
    swept = W.swept_keys(sel.sets)
    if swept and len(W.points(sel.sets)) < 2:
        raise ConfigError(f"--set {swept[0]}: a sweep needs two values or more, e.g. {swept[0]}=0.4,0.6.")
    runs, refused = [], []
    base = sweep_baseline(sel) if swept else None
    for sets, values in W.points(sel.sets):
        check_sets(preset_config(sel.preset, sel.modality), sets)  # before anything reads the values
        own = {k: v for k, v in sets.items() if not presets_own(sel.preset, sel.modality, k, v)}
        variant = variant_name(preset.name, own)  # a set equal to the preset's own names no variant
        sweep = {"id": sweep_id(preset.name, sel.sets), "keys": swept, "values": values, "baseline": base}
        sweep = sweep if swept else None
        for s in range(sel.seeds):
            seed = preset_config(sel.preset, sel.modality)["seed"] + s
            for entry_name, entry in entries:
                cfg = build_config(sel.preset, sel.modality, entry, sets, seed)
                key = f"rows.{entry_name}" if entry_name in (spec.get("rows") or {}) else entry_name
                where = f"{source.name}/{entry_name}" if source.builtin else f"{source.path}: {key}"
                try:
                    check_config(cfg, where)
                except ConfigError as e:
                    if spec.get("refused", "error") != "explain":
                        raise
                    refused.append(Refused(source.name, entry_name, sel.modality, str(e)))
                    continue
                owner, owner_entry = source.name, entry_name
                for t, rows in canonical.items():  # share folders with identical Table 1 / Fig. 8 runs
                    same = rows.get(cfg["model"]["step"])
                    if same and build_config(sel.preset, sel.modality, same, sets, seed) == cfg:
                        owner, owner_entry = t, cfg["model"]["step"]
                        break
                name = f"{owner}/{owner_entry}/{sel.modality}/{variant}/seed{seed}"
                runs.append(
                    Run(name, owner, owner_entry, sel.modality, preset.name, variant, seed, cfg, sweep)
                )
    unique = list({r.name: r for r in runs}.values())  # order kept
    return unique, list({(r.entry, r.reason): r for r in refused}.values())


def sweep_baseline(sel: Selection) -> dict:
    """{swept key: the point the user named}: the preset's own value when the sweep lists it
    (sweeping across the default), else the first value given. Reports measure every point's
    difference against it (analysis/sweeps.py)."""
    cfg, out = preset_config(sel.preset, sel.modality), {}
    for key in W.swept_keys(sel.sets):
        try:
            own = get_dotted(cfg, key)
        except (KeyError, TypeError):  # model.overrides.<flag>: the row's own value is not the preset's
            own = None
        values = list(sel.sets[key])
        out[key] = own if own is not None and own in values else values[0]
    return out


def check_swept_entries(sel: Selection, entries: list[tuple[str, dict]], source: S.Source) -> None:
    """A table entry that sets a swept key itself would make every point of the sweep the same
    run under several labels: refused before any work, with the entries that leave it alone."""
    swept = W.swept_keys(sel.sets)
    if not swept:
        return

    def own(entry: dict) -> list[str]:  # the keys the entry sets whatever --set says
        return [*entry["set"], *(f"model.overrides.{k}" for k in entry.get("model") or {})]

    for key in swept:
        setting = [n for n, e in entries if any(_overlaps(key, k) for k in own(e))]
        if not setting:
            continue
        free = [n for n, e in entries if not any(_overlaps(k, o) for k in swept for o in own(e))]
        named = ", ".join(setting[:4]) + (f" and {len(setting) - 4} more" if len(setting) > 4 else "")
        fix = f"sweep an entry that leaves it alone (--step {free[0]}), or " if free else ""
        one = len(setting) == 1
        who = f"{source.name}'s {'entry' if one else 'entries'} {named} set{'s' if one else ''}"
        raise ConfigError(
            f"--set {key}={_text(sel.sets[key])}: {who} {key} {'itself' if one else 'themselves'}, so "
            f"every point would be one run under several labels. Instead {fix}drop {key} from --set "
            "(the table's entries already choose it)."
        )


def selected_entries(sel: Selection, table: str, source: S.Source) -> list[tuple[str, dict]]:
    """The table's entries for this selection: --step picks one, --mode retrains a non-paper
    table's entries in that mode (each then named <entry>@<mode>, its own run folder)."""
    entries = table_entries(table, sel.modality)
    paper = source.builtin and source.name in PAPER_TABLES
    if sel.mode is not None and not paper:
        entries = [
            (n if e["mode"] == sel.mode else f"{n}@{sel.mode}", dict(e, mode=sel.mode)) for n, e in entries
        ]
    if sel.step is None:
        return entries
    names = [n for n, _ in entries]
    if sel.step not in names:
        if sel.step in list_rows():
            raise ConfigError(f"Row {sel.step!r} is not in {source.name}. Its entries: {', '.join(names)}.")
        for other in list_tables():  # an inline row runs with the table that defines it
            if other != table and sel.step in (load_table(other).get("rows") or {}):
                raise ConfigError(
                    f"Row {sel.step!r} is an inline row of table {other!r} ({source_of(other)}): "
                    f"run it with {table_flag(other)} --step {sel.step}."
                )
        valid = list(dict.fromkeys([*list_rows(), *names]))
        own = f"; a row of a table file needs its table: --table <file.yaml> --step {sel.step}"
        raise ConfigError(f"Unknown row {sel.step!r} in {source.name}{own}.{did_you_mean(sel.step, valid)}")
    return [(n, dict(e, mode=sel.mode or e["mode"])) for n, e in entries if n == sel.step]


def variant_name(preset: str, sets: dict) -> str:
    """The folder variant: the preset's name, plus a hash of the --set values that change results."""
    recipe = {k: v for k, v in sets.items() if k not in NAME_NEUTRAL_KEYS}
    if sets.get("finetune.init"):  # the folder follows the checkpoint's content, not its path
        recipe["finetune.init_sha256"] = file_sha256(sets["finetune.init"])
    return preset + (f"+{config_hash(recipe)}" if recipe else "")


def sweep_id(preset: str, sets: dict) -> str:
    """Names one sweep across its points: the preset, the swept keys and the other --set values
    (so adding a value later extends the same sweep)."""
    swept = W.swept_keys(sets)
    fixed = {k: v for k, v in sets.items() if k not in swept and k not in NAME_NEUTRAL_KEYS}
    leaves = "+".join(k.split(".")[-1] for k in swept)
    return f"{preset}-{leaves}-{config_hash([sorted(swept), fixed])}"
