"""Classic transforms, trained filters as transforms, and the 8-bit output a user publishes."""
import numpy as np
import pytest

from helpers import config, images, models, transforms


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.random((4, 32, 48, 3), dtype=np.float32)


@pytest.mark.parametrize("name", sorted(config.CLASSIC_TRANSFORMS))
def test_classic_transforms_keep_shape_and_range(name, batch):
    out = transforms.classic(name, seed=0)(batch)
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert transforms.classic(name).strength  # documented, shown in notebook 06


def test_classic_transforms_do_what_their_names_say(batch):
    grey = transforms.classic("grey")(batch)
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])
    assert np.allclose(grey[..., 0], batch @ np.array(transforms.LUMA, np.float32), atol=1e-6)
    assert np.array_equal(transforms.classic("none")(batch), batch)
    blur = transforms.classic("blur")(batch)
    assert blur.std() < batch.std() and np.allclose(blur.mean(), batch.mean(), atol=0.02)
    solid = np.full((2, 32, 48, 3), 0.3, np.float32)
    for name in ("blur", "pixelate", "grey"):  # a solid colour survives blur and pixelation unchanged
        assert np.allclose(transforms.classic(name)(solid), 0.3, atol=1e-5), name
    pix = transforms.classic("pixelate")(batch)  # 16 cells across 48 px: 3 x 3 blocks of one colour
    assert np.allclose(pix[:, :3, :3], batch[:, :3, :3].mean(axis=(1, 2), keepdims=True), atol=1e-5)
    noise = transforms.classic("noise", seed=1)
    a, b = noise(solid), noise(solid)
    assert not np.allclose(a, b) and abs(a.std() - config.CLASSIC_TRANSFORMS["noise"]["std"]) < 0.02


def test_unknown_transform_names_the_choices():
    with pytest.raises(KeyError, match="pixelate"):
        transforms.classic("mosaic")
    with pytest.raises(ValueError, match="uint8"):
        transforms.classic("grey").published("png")


def test_published_output_is_what_the_anonymise_command_writes(batch):
    filt = models.build_filter((5, 7, 7, 5, 3))
    t = transforms.trained_filter(filt, "f")
    as_float, as_published = t(batch), t.published("uint8")(batch)
    assert t.kind == "filter" and t.published("uint8").output == "uint8" and t.output == "float"
    np.testing.assert_array_equal(np.round(as_published * 255).astype(np.uint8), images.to_uint8(as_float))
    assert np.abs(as_published - as_float).max() <= 0.5 / 255 + 1e-7
