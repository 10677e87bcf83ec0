"""A table file's schema and its entries; rows may be defined inline, where they are used.

    rows:
      f: {mode: mae}                                   # a built-in row (models/rows.yaml)
      f+conv: {from: f, model: {pool: conv}, mode: mae} # an inline row: a base row + model flags
      f+conv-8: {from: f+conv, set: {pretrain.epochs: 8}}
    groups: {<group>: {title, entries: {<value>: {set | scale, modalities}}}}   # with row:, mode:

Built-in tables and user files go through the same check (check_table). An inline row is run as
its base row (model.step) plus the flag changes (model.overrides); one whose flags equal a
built-in row's is that row, so it shares the row's run folder.
"""

from __future__ import annotations

from dataclasses import MISSING, fields

from ablations.errors import ConfigError
from ablations.study import schema
from ablations.study.schema import Node, node
from ablations.study.sources import NAME_RE
from ablations.study.validate import MODES, USER_FLAGS, not_a_flag
from models import ModelConfig, load_rows, rows_first
from models.config import CHOICES as FLAG_CHOICES
from models.hints import did_you_mean

MODALITIES = ("image", "video")
TABLE_KEYS = ("name", "title", "description", "rows", "groups", "row", "mode", "refused", "interaction")
ROW_KEYS = ("mode", "from", "model", "set", "scale", "modalities", "component", "note")
GROUP_ENTRY_KEYS = ("set", "scale", "modalities")
# refused: what a table does with an entry that validation refuses (error: exit 2; explain: the
# entry is left out, and the dry run, the output and the report say why).
REFUSED = ("error", "explain")
CHANGES = ("put_back", "remove")  # interaction: the rows put a component back, or remove it
PATHS = ("table1", "fig8")  # interaction: the cumulative path (MAE, or supervised)
MODEL_FIELDS = {f.name: f for f in fields(ModelConfig)}


# ----------------------------------------------------------------------------- structure


def flags_node() -> Node:
    """model.overrides and an inline row's model: the model's flags, each of its field's kind."""
    keys = {}
    for name in USER_FLAGS:
        default = MODEL_FIELDS[name].default
        if isinstance(default, tuple):
            keys[name] = node("list", items=node("number", "bool"), example=f"{list(default)}")
        elif isinstance(default, bool):
            keys[name] = node("bool", example="true or false")
        elif isinstance(default, (int, float)):
            keys[name] = node("number", example=repr(default))
        else:
            keys[name] = node("text", example=" or ".join(FLAG_CHOICES.get(name, ())))
    hints = {k: not_a_flag(k) for k in MODEL_FIELDS if not_a_flag(k)}
    return node("mapping", "null", keys=keys, key_hints=hints)


def _scaled(n: Node, key: str = "") -> Node:
    """A config node whose numbers become scale factors (a row's scale:): only keys that always
    hold a number (a null has nothing to multiply); model flags are given with model:."""
    if key == "model.overrides":
        return Node(frozenset(), refuse="scale: model flags are given with model: {flag: value} on the row.")
    if n.keys is not None and "mapping" in n.kinds:  # a section: reached by dotted keys only
        keys = {k: _scaled(c, f"{key}.{k}" if key else k) for k, c in n.keys.items()}
        nested = f"scale: takes dotted keys of numbers, e.g. scale: {{{key or 'pretrain'}.<key>: 2}}."
        return Node(frozenset(), keys=keys, dotted=True, example=nested)
    if n.kinds == {"number"}:
        by_modality = node("number", example="2")
        return node("number", "mapping", keys={m: by_modality for m in MODALITIES},
                    example="2 (twice the preset's value), or {image: 2, video: 1}")  # fmt: skip
    return Node(frozenset(), refuse="scale: multiplies a number the preset always has (this key may be null "
                "or not a number); give its value with set: instead.")  # fmt: skip


def table_node(config: Node, flags: Node) -> Node:
    """The schema of a table file (config: the config's schema, for set: and scale:)."""
    text = schema.TEXT
    word = node("text")
    sets = Node(frozenset({"mapping", "null"}), keys=config.keys, dotted=True,
                example="set: {mae.mask_ratio: 0.9}")  # fmt: skip
    scale = Node(frozenset({"mapping", "null"}), keys=_scaled(config).keys, dotted=True,
                 example="scale: {pretrain.epochs: 2}")  # fmt: skip
    modalities = node("list", items=word, example="modalities: [image]")
    row_keys = {"mode": word, "from": text, "model": flags, "set": sets, "scale": scale,
                "modalities": modalities, "component": text, "note": text}  # fmt: skip
    assert set(row_keys) == set(ROW_KEYS)
    here = {"step": "a row names its base row with from: (from: f) and its flags with model:.",
            "sets": "give values with set: {key: value}."}  # fmt: skip
    row = node("mapping", "null", keys=row_keys, key_hints=here, example="f: {mode: mae}")
    entry = node("mapping", "null", keys={k: row_keys[k] for k in GROUP_ENTRY_KEYS})
    group = node("mapping", keys={"title": text, "entries": node("mapping", values=entry, what="entry")})
    top = {
        "name": text, "title": text, "description": text, "row": text, "mode": word, "refused": word,
        "rows": node("mapping", "null", values=row, what="row", example="rows: {f: {mode: mae}}"),
        "groups": node("mapping", "null", values=group, what="group", example="groups: {g: {entries: ...}}"),
        "interaction": node("mapping", keys={k: word for k in ("reference", "change", "path")}),
    }  # fmt: skip
    assert set(top) == set(TABLE_KEYS)
    hints = {
        "model": "model flags belong to a row: rows: {f+conv: {from: f, model: {pool: conv}, mode: mae}}.",
        "set": "values belong to a row (rows: {f: {mode: mae, set: {mae.mask_ratio: 0.9}}}) or to --set.",
        "extends": "a table does not extend; a preset does (preset: {extends: cpu}).",
        "preset": "a table runs under the preset given with --preset.",
    }
    return node("mapping", keys=top, key_hints=hints)


def _keys(tree, valid, where: str, label: str) -> None:
    if not isinstance(tree, dict):
        raise ConfigError(f"{label}: {where} must be a mapping, got {tree!r}.")
    for key in tree:
        if key not in valid:
            raise ConfigError(f"{label}: unknown key {where + str(key)!r}.{did_you_mean(key, valid)}")


def check_table(spec: dict, label: str) -> None:
    """ConfigError naming the file (label), the key and the fix; nothing that needs a preset."""
    _keys(spec, TABLE_KEYS, "", label)
    if not spec.get("rows") and not spec.get("groups"):
        raise ConfigError(f"{label}: no runs: give `rows:` (row name -> {{mode: mae}}) or `groups:`.")
    if spec.get("refused", "error") not in REFUSED:
        raise ConfigError(f"{label}: refused: {spec['refused']!r}.{did_you_mean(spec['refused'], REFUSED)}")
    for name, info in (spec.get("rows") or {}).items():
        where = f"rows.{name}"
        if not NAME_RE.match(str(name)):
            raise ConfigError(
                f"{label}: rows.{schema.printable(str(name))}: a row name is a folder name: use letters, "
                "digits and ._+- only."
            )
        _keys(info or {}, ROW_KEYS, f"{where}.", label)
        info = info or {}
        mode = info.get("mode", spec.get("mode"))
        if mode is None:
            raise ConfigError(
                f"{label}: {where}: no mode: give mode: mae or supervised (on the row, or at the top)."
            )
        if mode not in MODES:
            raise ConfigError(f"{label}: {where}.mode={mode!r}: give mode: mae or mode: supervised.")
        row_flags(spec, str(name), label)
        _check_modalities(info, where, label)
        removers = list(load_rows())[1:]
        if info.get("component") is not None and info["component"] not in removers:
            raise ConfigError(
                f"{label}: {where}.component={info['component']!r}: give the Table 1 row that removes it."
                f"{did_you_mean(info['component'], removers)}"
            )
    if spec.get("interaction") is not None:
        _check_interaction(spec, label)
    if spec.get("groups"):
        if spec.get("mode") not in MODES or spec.get("row") is None:
            raise ConfigError(
                f"{label}: groups need `row:` (the row they change) and `mode:` (mae or supervised)."
            )
        row_flags({**spec, "rows": {**(spec.get("rows") or {}), "": {"from": spec["row"]}}}, "", label)
        for group, gspec in spec["groups"].items():
            _keys(gspec, ("title", "entries"), f"groups.{group}.", label)
            for value, info in (gspec.get("entries") or {}).items():
                if not NAME_RE.match(f"{group}-{value}"):  # <group>-<value> names the run's folder
                    where = f"groups.{schema.printable(str(group))}.entries.{schema.printable(str(value))}"
                    raise ConfigError(f"{label}: {where}: group and entry names make a folder name: use "
                                      "letters, digits and ._+- only.")  # fmt: skip
                _keys(info or {}, GROUP_ENTRY_KEYS, f"groups.{group}.entries.{value}.", label)
                _check_modalities(info or {}, f"groups.{group}.entries.{value}", label)


def _check_interaction(spec: dict, label: str) -> None:
    """interaction: {reference: <row of this table>, change: put_back | remove, path: table1 | fig8};
    the rows with `component:` (the Table 1 row that removes it) are compared."""
    inter = spec["interaction"]
    _keys(inter, ("reference", "change", "path"), "interaction.", label)
    rows = list(spec.get("rows") or {})
    if inter.get("reference") not in rows:
        raise ConfigError(
            f"{label}: interaction.reference: give the row the others are compared with, one of {rows}."
        )
    for key, valid in (("change", CHANGES), ("path", PATHS)):
        if inter.get(key, valid[0]) not in valid:
            raise ConfigError(f"{label}: interaction.{key}={inter[key]!r}.{did_you_mean(inter[key], valid)}")


def _check_modalities(info: dict, where: str, label: str) -> None:
    for m in info.get("modalities", MODALITIES):
        if m not in MODALITIES:
            raise ConfigError(f"{label}: {where}.modalities: {m!r}.{did_you_mean(m, MODALITIES)}")
    for key, factor in (info.get("scale") or {}).items():
        for f in factor.values() if isinstance(factor, dict) else [factor]:
            if not (isinstance(f, (int, float)) and 0 < f < float("inf")):
                raise ConfigError(
                    f"{label}: {where}.scale.{key}: {f!r}; a scale factor multiplies the preset's value: "
                    "give a number > 0 (0.5 halves it, 2 doubles it)."
                )


def check_flags(model: dict, where: str, label: str) -> None:
    """Model flags: known ModelConfig fields (did-you-mean), values from their choices."""
    for key in model:
        if not_a_flag(key):
            raise ConfigError(f"{label}: {where}.model.{not_a_flag(key)}")
    _keys(model, USER_FLAGS, f"{where}.model.", label)
    for key, value in model.items():
        if key in FLAG_CHOICES and value not in FLAG_CHOICES[key]:
            raise ConfigError(
                f"{label}: {where}.model.{key}={value!r}.{did_you_mean(value, FLAG_CHOICES[key])}"
            )
        default = MODEL_FIELDS[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{label}: {where}.model.{key}={value!r}: give true or false.")
        if default is not MISSING and isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{label}: {where}.model.{key}={value!r}: give a number like {default!r}.")


def row_flags(spec: dict, name: str, label: str, _seen: tuple[str, ...] = ()) -> tuple[str, dict]:
    """(built-in row it runs as, model flag changes) of a table row; inline rows resolved."""
    builtin = load_rows()
    info = (spec.get("rows") or {}).get(name) or {}
    where = f"rows.{name}" if name else "row"
    if "from" not in info:
        if name not in builtin:
            raise ConfigError(
                f"{label}: {where}: {name!r} is not a built-in row.{did_you_mean(name, list(builtin))} "
                f"To define it here, give its base row and flags: {name}: {{from: f, model: {{pool: conv}}}}."
            )
        if info.get("model"):
            raise ConfigError(
                f"{label}: {where}: model: changes need `from:` (the base row), e.g. from: {name}."
            )
        return name, {}
    if name in builtin:
        raise ConfigError(f"{label}: {where}: {name!r} is a built-in row; give the inline row another name.")
    base = str(info["from"])
    if base in _seen or base == name:
        raise ConfigError(f"{label}: {where}.from: {base!r} leads back to {name!r}; break the circle.")
    model = info.get("model") or {}
    check_flags(model, where, label)
    here = spec.get("rows") or {}
    if "from" in (here.get(base) or {}):  # another inline row of this table
        step, changes = row_flags(spec, base, label, (*_seen, name))
    elif base in builtin:
        step, changes = base, {}
    else:
        rows = [*builtin, *(spec.get("rows") or {})]
        raise ConfigError(f"{label}: {where}.from: unknown row {base!r}.{did_you_mean(base, rows)}")
    return canonical(step, {**changes, **model})


def canonical(step: str, changes: dict) -> tuple[str, dict]:
    """The shortest way to say a row: changes its base already has are dropped, and flags equal
    to a built-in row's (other than MViTv2's, whose sizes differ) are that row."""
    rows = load_rows()
    changes = {k: v for k, v in changes.items() if rows[step].get(k, MODEL_FIELDS[k].default) != v}
    if step != rows_first() and changes:
        flags = {**rows[step], **changes}
        for row, row_flags_ in rows.items():
            if row != rows_first() and row_flags_ == flags:
                return row, {}
    return step, changes


def table_entries(spec: dict, modality: str, label: str) -> list[tuple[str, dict]]:
    """[(entry name, {"mode", "step", "model", "set", "scale", "component"})] in table order."""
    out = []
    for name, info in (spec.get("rows") or {}).items():
        info = info or {}
        if modality not in info.get("modalities", MODALITIES):
            continue
        step, model = row_flags(spec, str(name), label)
        out.append((str(name), _entry(info, modality, info.get("mode", spec.get("mode")), step, model)))
    if spec.get("groups"):
        step, model = row_flags(
            {**spec, "rows": {**(spec.get("rows") or {}), "": {"from": spec["row"]}}}, "", label
        )
        for group, gspec in spec["groups"].items():
            for value, info in gspec["entries"].items():
                info = info or {}
                if modality in info.get("modalities", MODALITIES):
                    out.append((f"{group}-{value}", _entry(info, modality, spec["mode"], step, model)))
    return out


def _entry(info: dict, modality: str, mode: str, step: str, model: dict) -> dict:
    # a factor per modality ({image: 2, video: 1}); a modality left out keeps the preset's value
    factors = (info.get("scale") or {}).items()
    scale = {k: (f.get(modality, 1.0) if isinstance(f, dict) else f) for k, f in factors}
    return {"mode": mode, "step": step, "model": dict(model), "set": dict(info.get("set") or {}),
            "scale": scale, "component": info.get("component")}  # fmt: skip
