"""The paper presets follow the paper's recipes: finetune length, drop path, the
settings coupled with pretraining length (Table 3f), MViTv2's supervised recipe, random erasing."""

import pytest
import torch

from ablations.data.transforms import ImageTensorTransform, VideoTransform
from ablations.study import config as C


def runs(preset, table="table3", modality=None, **sets):
    sel = C.Selection(table=table, preset=preset, modality=modality, sets=sets)
    return {r.entry: r.config for r in C.resolve(sel)}


def test_table1_finetunes_50_epochs_after_the_table1_pretraining():
    for preset, pre in (("in1k-l", 400), ("k400-b", 800), ("k400-l", 800)):
        f = runs(preset, table="table1")["f"]
        assert (f["pretrain"]["epochs"], f["finetune"]["epochs"]) == (pre, 50), preset


def test_table3f_couples_finetune_settings_with_pretraining_length():
    img = runs("in1k-l")
    drop = {e: img[f"epochs-{e}"]["finetune"]["drop_path"] for e in (800, 1600, 3200)}
    assert img["f"]["finetune"]["drop_path"] == 0.2  # the 400-epoch default = row f: Table 14, L
    assert drop == {800: 0.2, 1600: 0.1, 3200: 0.1}
    vid = runs("k400-l")
    decay = {e: vid[f"epochs-{e}"]["finetune"]["layer_decay"] for e in (400, 1600, 3200)}
    assert vid["f"]["finetune"]["layer_decay"] == 0.925  # 800 epochs
    assert decay == {400: 0.925, 1600: 0.9, 3200: 0.875}
    assert runs("k400-b")["epochs-3200"]["finetune"]["layer_decay"] == 0.8
    # an explicit --set wins over the coupling; unrelated presets are unchanged
    assert runs("in1k-l", **{"finetune.drop_path": 0.3})["epochs-1600"]["finetune"]["drop_path"] == 0.3
    cpu = runs("cpu")
    assert cpu["epochs-1600"]["finetune"] == cpu["f"]["finetune"]


def test_coupled_rules_are_checked():
    cfg = C.preset_config("cpu", "image")
    with pytest.raises(C.ConfigError, match="exactly 'if:' and 'set:'"):
        C.apply_coupled(cfg, [{"if": {"mode": "mae"}}])
    with pytest.raises(C.ConfigError, match="unknown key"):
        C.apply_coupled(cfg, [{"if": {"pretrain.epoch": 1}, "set": {}}])
    with pytest.raises(C.ConfigError, match="Unknown key 'finetune.drop_pth'"):
        C.apply_coupled(cfg, [{"if": {"mode": cfg["mode"]}, "set": {"finetune.drop_pth": 0.1}}])


def test_mvitv2_supervised_recipe_and_video_views():
    sup = runs("in1k-b", table="fig8")["mvitv2"]["supervised"]["aug"]
    assert sup["randaug"] == "rand-m9-n6-mstd0.5-inc1" and sup["reprob"] == 0.25
    k400 = runs("k400-l", table="fig8")["mvitv2"]
    assert k400["supervised"]["aug"]["randaug"] == "rand-m7-n4-mstd0.5-inc1"
    assert k400["data"]["views"] == {"spatial": 1, "temporal": 10}  # Table 4: MViTv2 x1x10
    assert runs("k400-l", table="table1")["f"]["data"]["views"] == {"spatial": 3, "temporal": 5}
    assert runs("k400-l", table="fig8", **{"data.views.temporal": 4})["mvitv2"]["data"]["views"] == {
        "spatial": 1,
        "temporal": 4,
    }


def test_random_erasing_in_paper_presets_and_settable():
    for preset in ("in1k-b", "in1k-l", "k400-b", "k400-l"):
        f = runs(preset, table="table1")["f"]
        assert f["finetune"]["aug"]["reprob"] == 0.25, preset
        assert "reprob" not in f["pretrain"]["aug"]  # MAE pretraining: crop and flip only
    assert runs("cpu", table="table1")["f"]["finetune"]["aug"]["reprob"] == 0.0
    cfg = runs("cpu", table="table1", **{"finetune.aug.reprob": 0.25})["f"]
    assert cfg["finetune"]["aug"]["reprob"] == 0.25


def test_random_erasing_images_and_one_box_per_clip():
    torch.manual_seed(0)
    aug = {"rrc_scale": [1.0, 1.0], "hflip": 0.0, "randaug": None, "reprob": 1.0}
    img = torch.full((3, 32, 32), 128, dtype=torch.uint8)
    x, _ = ImageTensorTransform((32, 32), (0.5,) * 3, (0.5,) * 3, aug)(img)
    assert (x != x[0, 0, 0]).any()  # a box of noise in a constant image
    clip = torch.full((4, 3, 32, 32), 128, dtype=torch.uint8)
    for _ in range(5):
        v, _ = VideoTransform((32, 32), (0.5,) * 3, (0.5,) * 3, aug)(clip)  # (C, T, H, W)
        erased = (v != v[0, 0, 0, 0]).any(0)  # (T, H, W)
        assert erased.any()
        assert all(torch.equal(erased[0], erased[t]) for t in range(4))  # same box in every frame
        assert not torch.equal(v[:, 0], v[:, 1])  # fresh noise per frame
    off, _ = VideoTransform((32, 32), (0.5,) * 3, (0.5,) * 3, dict(aug, reprob=0.0))(clip)
    assert (off == off[0, 0, 0, 0]).all()
    with pytest.raises(ValueError, match="reprob"):
        ImageTensorTransform((32, 32), (0.5,) * 3, (0.5,) * 3, dict(aug, reprob=2))
