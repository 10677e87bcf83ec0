"""Bad input gets an error that names the fix."""

import pytest
import torch

import models


@pytest.fixture(scope="module")
def model():
    return models.build("cpu-xs", step="f", num_classes=3).eval()


def test_wrong_input_size(model):
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 3, 32, 32\).*input_size"):
        model(torch.randn(1, 3, 40, 40))


def test_input_size_not_divisible_into_mask_units():
    with pytest.raises(ValueError, match="multiple of .*pixels"):
        models.build("B", step="f", input_size=(200, 200))


@pytest.mark.parametrize(
    "mask,match",
    [
        (torch.ones(2, 15, dtype=torch.bool), r"shape \(B, num_mask_units\) = \(2, 16\)"),
        (torch.ones(2, 16), "bool tensor"),
    ],
)
def test_bad_mask_shape_or_dtype(model, mask, match):
    with pytest.raises(ValueError, match=match):
        model(torch.randn(2, 3, 32, 32), mask=mask)


def test_uneven_keep_counts(model):
    keep = torch.zeros(2, 16, dtype=torch.bool)
    keep[0, :4] = True
    keep[1, :5] = True
    with pytest.raises(ValueError, match="same number of mask units.*fixed keep count"):
        model.forward_features(torch.randn(2, 3, 32, 32), mask=keep)


def test_unknown_step_and_size():
    with pytest.raises(ValueError, match=r"unknown step 'g'.*Valid: mvitv2, a, "):
        models.build("B", step="g")
    with pytest.raises(ValueError, match=r"unknown size 'b'.*Did you mean 'B'"):
        models.build("b", step="f")
    with pytest.raises(ValueError, match="unknown model option"):
        models.build("B", step="f", not_a_flag=1)
    with pytest.raises(ValueError, match="pool='mean' is not valid"):
        models.build("B", step="f", pool="mean")


def test_configurations_that_cannot_be_sparse():
    keep = torch.ones(1, 16, dtype=torch.bool)
    x = torch.randn(1, 3, 32, 32)
    rel = models.build("cpu-xs", step="mvitv2", num_classes=0, separate_and_pad=True)
    with pytest.raises(ValueError, match="relative position biases cannot be sparse"):
        rel.forward_features(x, mask=keep)
    overlap = models.build("cpu-xs", step="c", num_classes=0, separate_and_pad=False)
    with pytest.raises(ValueError, match="overlapping pools without separate_and_pad.*set separate_and_pad"):
        overlap.forward_features(x, mask=keep)
    with pytest.raises(ValueError, match="relative.*mask_unit.*not supported"):
        models.build("cpu-xs", step="f", position="relative")
