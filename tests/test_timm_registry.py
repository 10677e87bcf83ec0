"""Every row at every size through timm.create_model equals models.build."""

import pytest
import timm
import torch

import models
from models.steps import MODALITIES, SIZES, steps
from models.timm_registry import registered, timm_name

PAPER_SIZES = tuple(s for s in SIZES if not s.startswith("cpu"))


def test_every_row_size_and_modality_is_registered_under_a_clear_name():
    want = {timm_name(step, size, m) for size in SIZES for step in steps() for m in MODALITIES}
    assert len(want) == len(SIZES) * len(steps()) * len(MODALITIES)
    assert set(timm.list_models("hiera_abl_*")) == want == set(registered())
    for name in ("hiera_abl_c_base", "hiera_abl_mvitv2_large", "hiera_abl_c_base_16x224"):
        assert timm.is_model(name)
    assert timm_name("f", "B+") == "hiera_abl_f_base_plus"
    assert timm_name("f", "cpu-xs", "video") == "hiera_abl_f_cpu_xs_8x32"
    assert registered()["hiera_abl_e_huge_16x224"] == ("H", "e", "video")


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("step", steps())
def test_timm_model_equals_models_build(step, modality, size="cpu-xs"):
    torch.manual_seed(0)
    ours = models.build(size, step, modality, num_classes=7).eval()
    torch.manual_seed(0)
    theirs = timm.create_model(timm_name(step, size, modality), num_classes=7).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same init
    assert theirs.cfg == ours.cfg
    x = torch.randn(2, 3, *ours.cfg.input_size)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_cpu_s_builds_through_timm():
    torch.manual_seed(0)
    ours = models.build("cpu-s", "c", num_classes=5).eval()
    torch.manual_seed(0)
    theirs = timm.create_model("hiera_abl_c_cpu_s", num_classes=5).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


# One build per paper size, on the meta device (shapes only: no memory, no init cost); rows and
# modalities vary across them. Every name is checked to exist above, and every row runs above.
META = [("T", "mvitv2", "image"), ("S", "a", "video"), ("B", "c", "image"), ("B+", "d", "video")]
META += [("L", "mvitv2", "image"), ("H", "f", "video")]


@pytest.mark.parametrize("size,step,modality", META)
def test_paper_sizes_build_on_the_meta_device(size, step, modality):
    assert {s for s, _, _ in META} == set(PAPER_SIZES)
    with torch.device("meta"):
        ours = models.build(size, step, modality)
    theirs = timm.create_model(timm_name(step, size, modality), device="meta")
    assert theirs.cfg == ours.cfg
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }


def test_timm_kwargs_pass_through_as_model_config_overrides():
    m = timm.create_model(
        "hiera_abl_f_cpu_s", num_classes=3, drop_path_rate=0.1, drop_rate=0.2, in_chans=1, pool="avg"
    )
    assert (m.cfg.num_classes, m.cfg.drop_path, m.cfg.drop_rate, m.cfg.in_chans) == (3, 0.1, 0.2, 1)
    assert m.cfg.pool == "avg"
    assert m(torch.randn(1, 1, 64, 64)).shape == (1, 3)
    assert timm.create_model("hiera_abl_f_cpu_xs", img_size=64).cfg.input_size == (64, 64)
    video = timm.create_model("hiera_abl_f_cpu_xs_8x32", img_size=64)
    assert video.cfg.input_size == (8, 64, 64)
    trunk = timm.create_model("hiera_abl_f_cpu_xs", num_classes=0)
    assert trunk(torch.randn(1, 3, 32, 32)).shape == (1, trunk.num_features)
    data = timm.data.resolve_data_config({}, model=m)
    assert data["input_size"] == (1, 64, 64) and data["interpolation"] == "bicubic"
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("hiera_abl_f_base", pretrained=True)
    with pytest.raises(ValueError, match="unknown model option"):
        timm.create_model("hiera_abl_f_cpu_xs", pooling="avg")
    with pytest.raises(ValueError, match="global_pool"):
        timm.create_model("hiera_abl_f_cpu_xs", global_pool="token")


def test_timm_head_conventions():
    m = timm.create_model("hiera_abl_f_cpu_xs", num_classes=4)
    assert m.num_classes == 4 and m.get_classifier() is m.head
    m.reset_classifier(9)
    assert m.num_classes == 9 and m(torch.randn(1, 3, 32, 32)).shape == (1, 9)
    m.reset_classifier(0)
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, m.num_features)
