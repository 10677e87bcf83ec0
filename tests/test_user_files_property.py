"""Random table files, preset files and --set values through ablate.py's main (in process): a
file that does not fit is refused with exit 2, in one line, without a traceback, and nothing is
written under the runs folder. The files are valid ones with one place given a kind it does not
take (at every level), random structures, random bytes, and files too large to check."""

import itertools
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ablations.cli import main as cli
from ablations.study import config as C
from ablations.study import runs as R
from ablations.study.schema import MAX_ENTRIES
from ablations.study.yaml_files import MAX_FILE_BYTES

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
COUNTER = itertools.count()

# A valid table and a valid preset file (each place's kind is what the docs say it takes).
TABLE = {
    "name": "mine",
    "title": "mine",
    "mode": "mae",
    "rows": {
        "f": {"mode": "mae"},
        "f+conv": {"from": "f", "model": {"pool": "conv", "overlap": False, "q_stride": [2, 2]},
                   "set": {"mae.mask_ratio": 0.75, "pretrain": {"aug": {"rrc_scale": [0.3, 1.0]}}},
                   "scale": {"pretrain.epochs": 2, "finetune.epochs": {"image": 2, "video": 1}},
                   "modalities": ["image"], "note": "conv pooling back"},
    },
}  # fmt: skip
PRESET = {
    "preset": {"extends": "tiny", "description": "mine", "modalities": ["image"]},
    "mae": {"mask_ratio": 0.75, "decoder_depth": 1},
    "pretrain": {"epochs": 2, "betas": [0.9, 0.95], "aug": {"rrc_scale": [0.2, 1.0], "hflip": 0.5}},
    "data": {"num_frames": 8, "views": {"spatial": 1, "temporal": 1}},
    "runtime": {"log_every": 1, "tensorboard": False},
    "image": {"finetune": {"epochs": 1}},
}


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a file that does not fit reached training")

    monkeypatch.setattr(R, "run_training", refuse)
    monkeypatch.setattr(R, "measure_model", refuse)


def places(tree, path=()):
    """Every (path, value) of a tree, the top included."""
    yield path, tree
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        yield from places(v, (*path, k))


def replaced(tree, path, value):
    if not path:
        return value
    out = dict(tree) if isinstance(tree, dict) else list(tree)
    out[path[0]] = replaced(tree[path[0]], path[1:], value)
    return out


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.binary(max_size=8), st.dates(),
)  # fmt: skip
keys = st.one_of(st.text(max_size=10), st.integers(-5, 5), st.floats(0, 1), st.booleans(), st.none())
structures = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4), max_leaves=16
)


def kind(value) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "scalar"


def other_kind(original):
    """A structure of another kind than the original's: a mapping or list where a scalar belongs, a
    scalar or list where a mapping belongs, never null (an empty row, set: or model: is valid)."""
    wrong = {"mapping": ("list", "scalar"), "list": ("mapping", "scalar"), "scalar": ("mapping", "list")}
    if isinstance(original, (int, float)) and not isinstance(original, bool):
        wrong["scalar"] = ("list",)  # a scale factor may be {image: 2, video: 1}
    return structures.filter(lambda v: v is not None and kind(v) in wrong[kind(original)])


def dump(tree) -> str:
    return yaml.dump(tree, Dumper=yaml.Dumper, sort_keys=False, allow_unicode=True)


def refused(capsys, flag: str, text: str | bytes) -> None:
    """ablate.py with this file: exit 2, one line naming the file, no traceback, nothing written."""
    folder = Path(tempfile.mkdtemp(prefix=f"prop{next(COUNTER)}-"))
    path = folder / "mine.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    capsys.readouterr()
    runs = folder / "runs"
    other = ["--preset", "tiny"] if flag == "--table" else ["--step", "f"]
    rc = cli.main([flag, str(path), *other, "--runs-dir", str(runs), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 2, (rc, text[:300], err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ablate.py: error: "), err[-2000:]
    assert str(path) in lines[0] and "Traceback" not in out + err, err
    assert not runs.exists()


def test_the_templates_are_valid(tmp_path, capsys):
    (tmp_path / "t.yaml").write_text(dump(TABLE))
    (tmp_path / "p.yaml").write_text(dump(PRESET))
    args = ["--table", str(tmp_path / "t.yaml"), "--preset", str(tmp_path / "p.yaml"), "--dry-run"]
    assert cli.main(args) == 0, capsys.readouterr().err


@FAST
@given(data=st.data())
def test_a_table_with_a_wrong_kind_anywhere_is_one_line(capsys, data):
    path, original = data.draw(st.sampled_from(list(places(TABLE))))
    refused(capsys, "--table", dump(replaced(TABLE, path, data.draw(other_kind(original)))))


@FAST
@given(data=st.data())
def test_a_preset_with_a_wrong_kind_anywhere_is_one_line(capsys, data):
    path, original = data.draw(st.sampled_from(list(places(PRESET))))
    refused(capsys, "--preset", dump(replaced(PRESET, path, data.draw(other_kind(original)))))


@FAST
@given(tree=structures, flag=st.sampled_from(["--table", "--preset"]))
@example(tree={"rows": ["f"]}, flag="--table")
@example(tree={"rows": {"f": {"mode": "mae", "set": {"mae.mask_ratio": 0.5, 0.9: None}}}}, flag="--table")
@example(tree={"preset": {"extends": "cpu"}, "finetune": 3}, flag="--preset")
def test_random_structures_are_one_line(capsys, tree, flag):
    refused(capsys, flag, dump(tree))


@FAST
@given(raw=st.binary(min_size=1, max_size=200), flag=st.sampled_from(["--table", "--preset"]))
@example(raw=b"\x9b\x00rows:", flag="--table")
def test_random_bytes_are_one_line(capsys, raw, flag):
    refused(capsys, flag, raw)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(MAX_ENTRIES + 1, MAX_ENTRIES + 500), nested=st.integers(0, 3000))
def test_files_too_large_or_too_deep_are_one_line(capsys, rows, nested):
    lines = [f"  f{i}: {{from: f, mode: mae}}" for i in range(rows)]
    refused(capsys, "--table", "rows:\n" + "\n".join(lines) + "\n")
    refused(capsys, "--table", "rows: {f: {mode: mae, note: " + "[" * nested + "]" * nested + "}}\n")
    refused(capsys, "--table", "# padding\n" * (MAX_FILE_BYTES // 10 + 1) + "rows: {f: {mode: mae}}\n")


# ----------------------------------------------------------------------------- --set values

SET_KEYS = [k for k in C.flat_keys(C.preset_config("tiny", "image")) if k not in C.SELECTION_KEYS]


def set_value(value) -> str:
    """A structure as one --set value (YAML flow style, one line)."""
    return (
        yaml.dump(value, Dumper=yaml.Dumper, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("\n...")
    )


@FAST
@given(key=st.sampled_from(SET_KEYS), raw=st.text(max_size=30) | structures.map(set_value))
def test_any_set_value_is_taken_or_refused_in_one_line(capsys, key, raw):
    capsys.readouterr()
    rc = cli.main(["--step", "f", "--preset", "tiny", "--dry-run", "--set", f"{key}={raw}"])
    out, err = capsys.readouterr()
    assert rc in (0, 2) and "Traceback" not in err, (key, raw, err[-2000:])
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ablate.py: error: "), err


@FAST
@given(data=st.data())
def test_a_set_value_of_the_wrong_kind_is_refused(capsys, data):
    cfg = C.preset_config("tiny", "image")
    typed = [
        k for k in SET_KEYS if C.get_dotted(cfg, k) is not None and not isinstance(C.get_dotted(cfg, k), dict)
    ]
    key = data.draw(st.sampled_from(typed))
    old = C.get_dotted(cfg, key)
    fits = lambda v: isinstance(v, dict) or (isinstance(v, list) and not isinstance(old, list))  # noqa: E731
    wrong = data.draw(structures.filter(fits))
    capsys.readouterr()
    rc = cli.main(["--step", "f", "--preset", "tiny", "--dry-run", "--set", f"{key}={set_value(wrong)}"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (key, wrong, err)


@FAST
@given(
    where=st.sampled_from(["set", "scale"]),
    key=st.sampled_from([*SET_KEYS, "model.overrides.embed_dim", "model.overrides.pool"]),
    value=structures,
)
def test_any_key_in_a_rows_set_or_scale_is_taken_or_refused_in_one_line(capsys, where, key, value):
    folder = Path(tempfile.mkdtemp(prefix=f"prop{next(COUNTER)}-"))
    row = {"from": "f", "mode": "mae", where: {key: value}}
    (folder / "mine.yaml").write_text(dump({"rows": {"g": row}}))
    capsys.readouterr()
    rc = cli.main(["--table", str(folder / "mine.yaml"), "--preset", "tiny", "--dry-run"])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err, (where, key, value, err[-2000:])
    if rc == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("ablate.py: error: "), err


@FAST
@given(key=st.sampled_from([*SET_KEYS, "coupled", "image", "preset.modalities"]), value=structures)
def test_any_key_of_a_preset_file_is_taken_or_refused_in_one_line(capsys, key, value):
    folder = Path(tempfile.mkdtemp(prefix=f"prop{next(COUNTER)}-"))
    (folder / "p.yaml").write_text(dump({"preset": {"extends": "tiny"}, key: value}))
    capsys.readouterr()
    rc = cli.main(["--step", "f", "--preset", str(folder / "p.yaml"), "--dry-run"])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err, (key, value, err[-2000:])
    if rc == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("ablate.py: error: "), err
