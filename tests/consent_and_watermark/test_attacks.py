"""consent_and_watermark.attacks: the edits the robustness benchmark and the demo's chart apply."""

from __future__ import annotations

import numpy as np

from consent_and_watermark import attacks


def test_a_crop_keeps_that_share_of_the_area_centred():
    image = np.arange(100 * 120 * 3, dtype=np.uint8).reshape(100, 120, 3)
    crop = attacks.ATTACKS["crop75%"](image, np.random.default_rng(0))
    assert crop.shape == (87, 104, 3)  # sides scaled by sqrt(0.75): 75 % of the pixels
    np.testing.assert_array_equal(crop, image[6:93, 8:112])
    assert attacks.ATTACKS["crop75%+resize"](image, np.random.default_rng(0)).shape == image.shape


def test_contrast_scales_about_the_image_mean():
    image = np.full((8, 8, 3), 100, np.uint8)
    image[:4] = 200  # mean 150
    out = attacks.contrast(image, 0.8)
    assert set(np.unique(out)) == {110, 190}  # 150 -+ 0.8 * 50
    np.testing.assert_array_equal(attacks.contrast(np.full((4, 4, 3), 77, np.uint8), 0.8), 77)
