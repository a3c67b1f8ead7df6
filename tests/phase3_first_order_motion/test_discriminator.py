"""The multi-scale PatchGAN discriminator: map sizes, one block by hand, scale keys."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common.impl import load


@pytest.fixture(scope="module")
def disc_module():
    return load("phase3_first_order_motion", "discriminator")


def test_feature_maps_shrink_as_published_and_the_last_block_is_not_pooled(disc_module):
    """256 px: conv 4x4 (-3 px) then 2x2 pooling in all but the last block -> 126, 61, 29, 26 px."""
    disc = disc_module.Discriminator(block_expansion=2, max_features=8)
    feature_maps, prediction = disc(torch.rand(1, 3, 256, 256))
    sizes = [tuple(f.shape[1:]) for f in feature_maps]
    assert sizes == [(4, 126, 126), (8, 61, 61), (8, 29, 29), (8, 26, 26)]
    assert prediction.shape == (1, 1, 26, 26)


def test_a_block_is_conv_then_instance_norm_then_leaky_relu_then_pooling(disc_module):
    torch.manual_seed(0)
    block = disc_module.DiscriminatorBlock(2, 3, norm=True, pool=True)
    torch.nn.init.normal_(block.norm.weight)
    torch.nn.init.normal_(block.norm.bias)
    x = torch.randn(2, 2, 11, 11)
    out = F.conv2d(x, block.conv.weight, block.conv.bias)
    out = F.instance_norm(out, weight=block.norm.weight, bias=block.norm.bias)
    out = torch.where(out > 0, out, 0.2 * out)
    torch.testing.assert_close(block(x), F.avg_pool2d(out, 2))
    plain = disc_module.DiscriminatorBlock(2, 3)
    conv = F.conv2d(x, plain.conv.weight, plain.conv.bias)
    torch.testing.assert_close(plain(x), torch.where(conv > 0, conv, 0.2 * conv))


def test_fractional_scales_have_their_own_discriminator_and_keys(disc_module):
    multi = disc_module.MultiScaleDiscriminator(scales=(1, 0.5), block_expansion=2, max_features=4,
                                                num_blocks=2)
    assert {key.split(".")[1] for key in multi.state_dict()} == {"1", "0-5"}
    out = multi({"prediction_1": torch.rand(1, 3, 32, 32), "prediction_0.5": torch.rand(1, 3, 16, 16)})
    assert set(out) == {"feature_maps_1", "prediction_map_1", "feature_maps_0.5", "prediction_map_0.5"}
    assert out["prediction_map_1"].shape == (1, 1, 11, 11) and out["prediction_map_0.5"].shape == (1, 1, 3, 3)
