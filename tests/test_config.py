"""The resolver: presets + tables + --set overrides -> named run configs, checked before any work."""

import pytest

from ablations.study import config as C
from ablations.train.batching import plan_batch


def resolve(**kw):
    return C.resolve(C.Selection(**kw))


@pytest.mark.parametrize("preset", C.list_presets())
@pytest.mark.parametrize("table", ["table1", "table3", "fig8", "loo", "one"])
def test_every_preset_and_table_resolves(preset, table):
    for modality in C.preset_modalities(C.load_preset(preset)):
        runs = resolve(table=table, preset=preset, modality=modality)
        assert runs and len({r.name for r in runs}) == len(runs)
        for run in runs:
            assert set(run.config) >= {
                "mode",
                "seed",
                "model",
                "data",
                "mae",
                "pretrain",
                "finetune",
                "supervised",
            }
            assert run.config["model"]["modality"] == modality


def test_a_preset_extends_another_by_its_changes_only(tmp_path, monkeypatch):
    laptop, cpu = C.preset_config("laptop", "image"), C.preset_config("cpu", "image")
    assert (laptop["pretrain"]["train_size"], laptop["mae"]["target"]) == (8000, "hog")
    for key in ("finetune", "supervised", "model", "data", "runtime"):
        assert laptop[key] == cpu[key], key
    assert {k: v for k, v in laptop["pretrain"].items() if k != "train_size"} == {
        k: v for k, v in cpu["pretrain"].items() if k != "train_size"
    }
    # video: the cpu preset's clips and recipe, MAE on 4x unlabeled clips on pixels (HOG is images')
    laptop_v, cpu_v = C.preset_config("laptop", "video"), C.preset_config("cpu", "video")
    assert (laptop_v["pretrain"]["train_size"], laptop_v["mae"]) == (8000, cpu_v["mae"])
    for key in ("finetune", "supervised", "model", "data", "runtime"):
        assert laptop_v[key] == cpu_v[key], key
    # its runs are its own (folder variant "laptop"), and the supervised ones train what cpu's do
    (sup,) = resolve(step="f", mode="supervised", preset="laptop")
    (cpu_sup,) = resolve(step="f", mode="supervised", preset="cpu")
    assert (
        sup.name == "fig8/f/image/laptop/seed0" and sup.config["supervised"] == cpu_sup.config["supervised"]
    )
    # an unknown key in the child, and a cycle, are errors naming the file
    monkeypatch.setattr(C.S, "PRESET_DIR", tmp_path)
    (tmp_path / "base.yaml").write_text((C.Path(C.__file__).parent / "presets" / "cpu.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("preset: {extends: base}\npretrain: {epoch: 8}\n")
    with pytest.raises(
        C.ConfigError, match="bad.yaml: pretrain.epoch: unknown key. Did you mean 'pretrain.epochs'"
    ):
        C.load_preset("bad")
    (tmp_path / "x.yaml").write_text("preset: {extends: y}\n")
    (tmp_path / "y.yaml").write_text("preset: {extends: x}\n")
    with pytest.raises(C.ConfigError, match="extends it back"):
        C.load_preset("x")


def test_rows_come_from_rows_yaml():
    import models

    assert C.list_rows() == models.steps() == ["mvitv2", "a", "b", "c", "d", "e", "f"]


def test_run_names_and_modes():
    (f,) = resolve(step="f")
    assert f.name == "table1/f/image/cpu/seed0" and f.config["mode"] == "mae"
    (m,) = resolve(step="mvitv2")
    assert m.config["mode"] == "supervised"
    (s,) = resolve(step="c", mode="supervised")
    assert s.name == "fig8/c/image/cpu/seed0" and s.config["model"]["step"] == "c"
    (v,) = resolve(step="f", modality="video")
    assert v.name == "table1/f/video/cpu/seed0" and v.config["data"]["name"] == "builtin_video"
    assert v.config["mae"]["mask_ratio"] == 0.9
    names = [r.name for r in resolve(table="table1", seeds=2)]
    assert len(names) == 14 and "table1/a/image/cpu/seed1" in names


def test_shared_runs_are_trained_once():
    fig8 = [r.name for r in resolve(table="fig8")]
    assert fig8[0] == "table1/mvitv2/image/cpu/seed0"  # Fig. 8's mvitv2 is Table 1's
    t3 = [r.name for r in resolve(table="table3")]
    assert "table1/f/image/cpu/seed0" in t3  # the defaults of Table 3 are row f
    assert "table3/mask_ratio-0.6/image/cpu/seed0" not in t3
    assert "table3/mask_ratio-0.5/image/cpu/seed0" in t3
    assert not any("0.75" in n for n in t3)  # video-only value


def test_table3_scales():
    runs = {r.entry: r.config for r in resolve(table="table3")}
    base = C.preset_config("cpu", "image")
    assert runs["epochs-3200"]["pretrain"]["epochs"] == 8 * base["pretrain"]["epochs"]
    assert runs["decoder_depth-12"]["mae"]["decoder_depth"] == round(1.5 * base["mae"]["decoder_depth"])
    video = {r.entry: r.config for r in resolve(table="table3", modality="video")}
    assert video["epochs-400"]["pretrain"]["epochs"] == max(1, round(0.5 * base["pretrain"]["epochs"]))


@pytest.mark.parametrize(
    "raw, value",
    [
        ("3", 3),
        ("0.5", 0.5),
        ("true", True),
        ("[1, 2]", [1, 2]),
        ("null", None),
        ("hog", "hog"),
        ("1e-3", 0.001),
        ("nan-ish", "nan-ish"),
    ],
)
def test_set_values_are_yaml_typed(raw, value):
    assert C.parse_sets([f"k={raw}"]) == {"k": value}


def test_set_nested_keys_and_variant():
    (run,) = resolve(step="f", sets=C.parse_sets(["mae.mask_ratio=0.75", "finetune.aug.hflip=0.0"]))
    assert run.config["mae"]["mask_ratio"] == 0.75 and run.config["finetune"]["aug"]["hflip"] == 0.0
    assert run.variant.startswith("cpu+") and run.name == f"table1/f/image/{run.variant}/seed0"
    (same,) = resolve(step="f", sets=C.parse_sets(["finetune.aug.hflip=0.0", "mae.mask_ratio=0.75"]))
    assert same.variant == run.variant
    (where,) = resolve(step="f", sets=C.parse_sets(["data.root=/data", "data.num_workers=4"]))
    assert where.variant == "cpu"  # where the data lives is not part of the recipe
    (mo,) = resolve(step="f", sets=C.parse_sets(["model.overrides.mlp_ratio=3.0"]))
    assert mo.config["model"]["overrides"] == {"mlp_ratio": 3.0}


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(preset="cpuu"), ["Unknown preset 'cpuu'", "Did you mean 'cpu'", "in1k-l", "tiny"]),
        (dict(step="g"), ["Unknown row 'g'", "mvitv2, a, b, c, d, e, f"]),
        (dict(step="f", modality="vidoe"), ["Did you mean 'video'", "image, video"]),
        (dict(step="f", mode="mea"), ["Did you mean 'mae'", "mae, supervised"]),
        (dict(step="mvitv2", mode="mae"), ["cannot be MAE-pretrained", "--mode supervised"]),
        (dict(step="f", preset="in1k-b", modality="video"), ["no video recipe", "image"]),
        (dict(table="table3", mode="supervised"), ["Table 3 ablates MAE"]),
        (
            dict(step="f", sets={"mae.mask_ratoi": 0.5}),
            ["Unknown key 'mae.mask_ratoi'", "'mae.mask_ratio'", "mae.target"],
        ),
        (dict(step="f", sets={"maee.target": "hog"}), ["Did you mean 'mae.target'", "pretrain"]),
        (
            dict(step="f", sets={"mae.target": "hogg"}),
            ["mae.target='hogg'", "Did you mean 'hog'", "pixel, hog"],
        ),
        (dict(step="f", sets={"pretrain.epochs": "ten"}), ["expected int", "got str"]),
        (dict(step="f", sets={"mae": 1}), ["is a section"]),
        (dict(step="f", sets={"model.step": "a"}), ["--step"]),
        (dict(step="f", sets={"model.size": "XL"}), ["model.size='XL'", "cpu-xs"]),
        (
            dict(step="f", sets={"model.overrides.dropp": 0.1}),
            ["unknown model override 'dropp'", "drop_path"],
        ),
        (dict(step="f", sets={"mae.mask_ratio": 1.5}), ["must lie in"]),
        (dict(step="f", sets={"data.name": "imagenet"}), ["data.name='imagenet'", "imagefolder"]),
    ],
)
def test_bad_input_names_the_fix(kw, words):
    with pytest.raises(C.ConfigError) as e:
        resolve(**kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_paper_presets_need_a_data_root():
    from ablations.data import check_data

    (run,) = resolve(step="f", preset="in1k-l")
    with pytest.raises(C.ConfigError, match="data.root="):
        check_data(run.config["data"])
    (run,) = resolve(step="f", preset="in1k-l", sets={"data.root": "/no/such/imagenet"})
    with pytest.raises(C.ConfigError, match="data.root=/no/such/imagenet does not exist"):
        check_data(run.config["data"])
    assert run.config["model"]["size"] == "L" and run.config["finetune"]["epochs"] == 50


def test_paper_recipes():
    # Batches are global (per optimizer step): the paper's numbers, whatever the process count.
    b = C.preset_config("in1k-b", "image")
    assert b["pretrain"]["batch_size"] == 4096 and b["pretrain"]["blr"] * 4096 / 256 == pytest.approx(8e-4)
    assert b["finetune"]["batch_size"] == 1024 and b["finetune"]["blr"] * 1024 / 256 == pytest.approx(2e-3)
    assert b["supervised"]["batch_size"] == 2048
    assert plan_batch(4096, 8, b["runtime"]["max_batch_per_device"]) == (128, 4)  # 8 GPUs
    assert plan_batch(4096, 64, b["runtime"]["max_batch_per_device"]) == (64, 1)  # the paper's 8 x 8
    k = C.preset_config("k400-l", "video")
    assert k["pretrain"]["batch_size"] == 512 and k["pretrain"]["blr"] * 512 / 256 == pytest.approx(8e-4)
    for name in C.list_presets():  # accumulation is derived now, never a preset value
        for modality in C.preset_modalities(C.load_preset(name)):
            cfg = C.preset_config(name, modality)
            assert all("accum_iter" not in cfg[p] for p in ("pretrain", "finetune", "supervised")), name
    assert (
        k["mae"]["mask_ratio"] == 0.9 and k["data"]["num_frames"] == 16 and k["finetune"]["clip_grad"] == 5.0
    )
