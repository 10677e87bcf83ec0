"""The structure of what a user writes (table files, preset files, --set values), checked before
any value is: mappings where mappings belong, lists where lists belong, known keys at each level,
and limits on size, so that the value checks (validate.py, bounds.py) only ever see the shapes
they expect.

    check(tree, node, label)               # ConfigError: file, key path, what was found, the fix
    config_node(trees)                     # the config's schema, read from the built-in presets

The config's schema is generated, not written: its keys and the kinds of their values are those
of the built-in presets' trees (the same trees keys.yaml documents, tests/test_config_docs.py),
numbers wherever bounds.py gives a range, plus the few kinds MORE_KINDS names (values that
keys.yaml allows but no preset uses). A key added to a preset is in the schema at once.

A hand-written walker rather than jsonschema or pydantic: every message must name the fix in
this harness's words (a sweep belongs on the command line, `extends:` belongs under `preset:`),
which a generic validator's messages do not, and YAML gives keys that JSON cannot have (numbers,
null) that need their own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ablations.errors import ConfigError
from ablations.study.bounds import PHASE_SECTIONS, PHASE_SPANS, SPANS
from models.hints import did_you_mean

# Limits of one file: a table of the paper has ~30 entries; the limits sit far above any study
# and far below what takes minutes to check (a 7 MB table of 130k rows ran for minutes before).
MAX_ENTRIES = 2000  # rows, group entries, list items of one mapping or list
MAX_DEPTH = 24  # the deepest config key is 4 levels down; a table row's `set:` adds 3
MAX_NODES = 200_000  # every key and value of one file, YAML aliases counted each time they are used
SHOWN = 40  # characters of a value shown in a message

# Kinds a config value may take beyond the presets' own (keys.yaml says what each means).
MORE_KINDS = {
    "data.input_size": {"number"},  # an int means square
    "runtime.grad_ckpt": {"number"},  # N: the first N blocks
    "runtime.compile": {"text"},  # model, blocks
    "finetune.init": {"text"},  # a checkpoint file
    "finetune.init_sha256": {"text"},  # computed; check_sets says so
}
# runtime.plan is not here: --device-mem writes it into a run's config; a file or --set may not
FREE = ("model.overrides",)  # mappings whose keys are not config keys


@dataclass(frozen=True)
class Node:
    """What one place of a file may hold. kinds: of "mapping", "list", "text", "number", "bool",
    "null". A mapping has known `keys` (each a Node), or free keys whose values are `values`; a
    list has `items`. `dotted`: a key may be a dotted path into `keys` (mae.mask_ratio)."""

    kinds: frozenset
    keys: Mapping[str, Node] | None = None
    values: Node | None = None
    items: Node | None = None
    dotted: bool = False
    example: str = ""  # what to write instead, shown as the fix
    key_hints: Mapping[str, str] = field(default_factory=dict)  # unknown key -> where it belongs
    most: int = MAX_ENTRIES
    what: str = ""  # what a free key names (row, group) in messages
    root: bool = False  # a config tree starts here (a preset's image: overlay): keys restart
    refuse: str = ""  # any value here is refused with this text (a key that takes no value here)


def node(*kinds: str, **kw) -> Node:
    return Node(frozenset(kinds), **kw)


ANY = node("mapping", "list", "text", "number", "bool", "null")
TEXT = node("text", "number")  # names and titles: a number is read as its text


def kind_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


NAMES = {"mapping": "a mapping (key: value)", "list": "a list [...]", "text": "text", "number": "a number",
         "bool": "true or false", "null": "nothing (null)"}  # fmt: skip


def shown(value) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def printable(text: str) -> str:
    """A key or value as one line of a message: control characters escaped, long text cut."""
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def found(value) -> str:
    kind = kind_of(value)
    if kind in ("mapping", "list"):
        entries = "1 entry" if len(value) == 1 else f"{len(value)} entries"
        return f"{'a mapping' if kind == 'mapping' else 'a list'} ({entries})"
    if kind == "bool":
        return f"{str(value).lower()} (a boolean)"
    if kind in ("text", "number"):
        return f"{shown(value)} ({NAMES[kind]})"
    if kind == "null":
        return "nothing (an empty value)"
    if kind == "bytes":
        return "binary data (!!binary)"
    return f"a YAML {kind} ({shown(value)}); quote it to give text"


def expected(n: Node) -> str:
    """The kinds n takes, in words ("nothing" only where it is all a key may be)."""
    names = {**NAMES, "mapping": f"a mapping of {n.what} name: {n.what}"} if n.what else NAMES
    kinds = [k for k in ("mapping", "list", "number", "text", "bool") if k in n.kinds] or ["null"]
    return " or ".join(names[k] for k in kinds)


class _Walk:
    def __init__(self, label: str):
        self.label, self.seen = label, 0

    def fail(self, path: str, text: str) -> None:
        where = f"{self.label} {path}" if self.label == "--set" else f"{self.label}: {path or 'the file'}"
        raise ConfigError(f"{where}: {text}")

    def check(self, value, n: Node, path: str, depth: int = 0, key: str = "") -> None:
        """key: the dotted config key of this place (inside a config tree), for the fixes."""
        self.seen += 1
        if self.seen > MAX_NODES:
            self.fail(path, f"more than {MAX_NODES} values (YAML aliases counted where used); "
                      "write a smaller file.")  # fmt: skip
        if depth > MAX_DEPTH:
            self.fail(path, f"nested more than {MAX_DEPTH} levels deep; no key of a table or preset is.")
        if n.refuse or not n.kinds:  # no value belongs here (a section only dotted keys pass)
            self.fail(path, n.refuse or n.example)
        kind = kind_of(value)
        if kind == "text" and "," in value and "number" in n.kinds and "text" not in n.kinds:
            self.fail(path, f"{shown(value)} is a sweep; a sweep belongs on the command line "
                      f"(--set {key or path}={printable(value.replace(' ', ''))}) "
                      "or in one row per value.")  # fmt: skip
        if kind not in n.kinds:
            fix = f" e.g. {n.example}" if n.example else ""
            self.fail(path, f"must be {expected(n)}, got {found(value)}.{fix}")
        if kind in ("mapping", "list") and len(value) > n.most:
            self.fail(path, f"{len(value)} entries; a file holds at most {n.most} here. Split it into "
                      "several files, or sweep a key on the command line (--set key=a,b,c).")  # fmt: skip
        if kind == "list":
            for i, item in enumerate(value):
                self.check(item, n.items or ANY, f"{path}[{i}]", depth + 1)
        elif kind == "mapping":
            self.mapping(value, n, path, depth, key)

    def mapping(self, tree: dict, n: Node, path: str, depth: int, key: str) -> None:
        before = None
        for k, value in tree.items():
            if not isinstance(k, str):
                self.bad_key(k, before, path)
            where = f"{path}.{printable(k)}" if path else printable(k)
            child = self.child(n, k, where, path, f"{key}." if n.dotted and key else "")
            inner = (f"{key}.{k}" if key else k) if n.dotted and not child.root else ""
            self.check(value, child, where, depth + 1, inner)
            before = (inner or k, value)

    def child(self, n: Node, key: str, where: str, path: str, prefix: str = "") -> Node:
        """The node of key in mapping n (prefix: the dotted config key of n, for the hint)."""
        if n.keys is None:
            if n.values is not None and not key.strip():
                self.fail(where, f"an empty {n.what} name; give it a name.")
            return n.values or ANY
        if key in n.keys:
            return n.keys[key]
        head, _, rest = key.partition(".")
        if n.dotted and rest and head in n.keys:
            inner = n.keys[head]
            if inner.refuse:
                self.fail(where, inner.refuse)
            if inner.keys is None:
                self.fail(where, f"{head} holds no keys; set {head} itself.")
            return self.child(inner, rest, where, f"{path}.{head}" if path else head, f"{prefix}{head}.")
        hint = n.key_hints.get(key)
        if hint:
            self.fail(where, f"not a key here: {hint}")
        full = [f"{prefix}{k}" for k in n.keys]
        self.fail(where, f"unknown key.{did_you_mean(prefix + key, list(n.keys), full)}")
        raise AssertionError  # fail raised

    def bad_key(self, key, before, path: str) -> None:
        """A key that is not text: in YAML a flow mapping {mae.mask_ratio: 0.5, 0.9} reads 0.9 as a
        key, which is almost always a sweep written where one value belongs."""
        if before is not None and isinstance(key, (int, float)) and not isinstance(key, bool):
            name, value = before
            sweep = printable(f"{name}={value},{key}")
            self.fail(path or "the file", f"{printable(str(name))}: a sweep belongs on the command line "
                      f"(--set {sweep}) or in one row per value; {key!r} was read as a key.")  # fmt: skip
        self.fail(path, f"a key must be text, got {found(key)}; quote it or fix the indentation.")


def check(tree, n: Node, label: str, path: str = "") -> None:
    """ConfigError, in one line, at the first place tree does not fit n (label: the file, or
    "--set" with path the key)."""
    _Walk(label).check(tree, n, path)


# ----------------------------------------------------------------------------- the config's schema


def _observe(tree: dict, prefix: str, kinds: dict, items: dict) -> None:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        kinds.setdefault(path, set()).add(kind_of(value))
        if isinstance(value, list):
            items.setdefault(path, set()).update(kind_of(v) for v in value)
        if isinstance(value, dict) and path not in FREE:
            _observe(value, path + ".", kinds, items)


def _spanned(path: str) -> bool:
    section, _, rest = path.partition(".")
    return path in SPANS or (section in PHASE_SECTIONS and rest in PHASE_SPANS)


def config_node(trees: list[dict], flags: Node) -> Node:
    """The schema of a config tree (every key optional), from the trees of the built-in presets
    (their image/video overlays included); `flags` is model.overrides' (the model's flags)."""
    kinds: dict[str, set] = {}
    items: dict[str, set] = {}
    for tree in trees:
        _observe(tree, "", kinds, items)
    for key, more in MORE_KINDS.items():
        kinds.setdefault(key, set()).update(more)
    for key in kinds:
        if _spanned(key):
            kinds[key].add("number")

    def build(prefix: str) -> dict[str, Node]:
        out = {}
        for path in kinds:
            head, _, rest = path.removeprefix(prefix).partition(".")
            if not path.startswith(prefix) or rest or head in out:
                continue
            k = frozenset(kinds[path])
            if path == "model.overrides":
                out[head] = flags
            elif path in FREE:
                out[head] = Node(k)
            elif "mapping" in k:
                out[head] = Node(k, keys=build(path + "."), dotted=True)
            else:
                item_kinds = frozenset(items.get(path, ())) or ANY.kinds
                out[head] = Node(k, items=Node(item_kinds), example=_example(k, item_kinds))
        return out

    return Node(frozenset({"mapping"}), keys=build(""), dotted=True)


def _example(kinds: frozenset, item_kinds: frozenset) -> str:
    if "list" in kinds and item_kinds == {"number"}:
        return "[0.2, 1.0]" if "number" not in kinds else "32 or [32, 32]"
    return ""


def lookup(root: Node, key: str) -> Node | None:
    """The node of a dotted config key (model.overrides.<flag> included); None if unknown."""
    n = root
    parts = key.split(".")
    for i, part in enumerate(parts):
        if n.keys is None:
            return n.values if n.values is not None else (ANY if i else None)
        if part not in n.keys:
            return None
        n = n.keys[part]
    return n
