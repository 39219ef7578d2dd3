"""Exports of the filter compute what the Keras filter computes, within the stated tolerances."""
import numpy as np
import pytest

from helpers import export
from helpers.models import build_filter


@pytest.fixture(scope="module")
def filt():
    f = build_filter((5, 7, 7, 5, 3))
    # He-scaled weights keep every layer's activations of order one, as in a trained filter
    rng = np.random.default_rng(0)
    f.set_weights([rng.normal(0, np.sqrt(2 / (9 * w.shape[2])), w.shape).astype("float32")
                   for w in f.get_weights()])
    return f


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    smooth = np.kron(rng.random((4, 6, 8, 3)), np.ones((1, 6, 5, 1)))  # blocky, like objects on a floor
    return np.clip(smooth + rng.normal(0, 0.03, smooth.shape), 0, 1).astype("float32")  # (4, 36, 40, 3)


def test_flops_count_the_five_convolutions(filt):
    assert export.filter_flops(filt, 480, 640) == 2 * 480 * 640 * 9 * (3 * 5 + 5 * 7 + 7 * 7 + 7 * 5 + 5 * 3)
    assert export.filter_flops(filt, 480, 640) / 1e9 == pytest.approx(0.824, abs=1e-3)


def test_saved_model_round_trip(tmp_path, filt, images):
    path = export.export_saved_model(filt, tmp_path / "filter_savedmodel")
    loaded = export.SavedModelFilter(path)
    assert export.check(filt, loaded, images, "savedmodel") <= 1e-5
    assert loaded(images[:1, :20, :30]).shape == (1, 20, 30, 3)  # any size


@pytest.mark.parametrize("quantize, fmt", [(None, "tflite_float32"), ("int8", "tflite_int8")])
def test_tflite_round_trip(tmp_path, filt, images, quantize, fmt):
    path = export.export_tflite(filt, tmp_path / f"{fmt}.tflite", size=images.shape[1:3], quantize=quantize,
                                representative=images)
    lite = export.TFLiteFilter(path, threads=1)
    diff = export.check(filt, lite, images, fmt)
    if quantize:
        assert diff > 1e-5  # really quantised
    assert lite(images[:1, :24, :16]).shape == (1, 24, 16, 3)  # the interpreter resizes to other frames


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_openvino_round_trip(tmp_path, filt, images, precision):
    xml = export.export_openvino(filt, tmp_path / "openvino")
    vino = export.OpenVINOFilter(xml, precision)
    diff = export.check(filt, vino, images, f"openvino_{precision}")
    assert vino(images[:1, :20, :30]).shape == (1, 20, 30, 3)
    assert diff <= export.TOLERANCE[f"openvino_{precision}"]


def test_int8_needs_representative_images(tmp_path, filt):
    with pytest.raises(ValueError, match="representative"):
        export.export_tflite(filt, tmp_path / "x.tflite", size=(32, 32), quantize="int8")


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_folded_filter_is_the_same_filter(filt, images, k):
    folded = export.FoldedFilter(filt, k=k)
    assert export.check(filt, folded, images, "folded_float32") <= 1e-5
    odd = images[:, :, :37]  # widths that are not a multiple of k are padded and cropped back
    assert np.abs(folded(odd) - np.asarray(filt(odd))).max() <= 1e-5


def test_folded_bfloat16_within_two_grey_levels(filt, images):
    folded = export.FoldedFilter(filt, k=2, dtype="bfloat16")
    diff = export.check(filt, folded, images, "folded_bfloat16")
    assert 0 < diff <= 2 / 255


def test_check_fails_on_a_different_filter(filt, images):
    other = build_filter((5, 7, 7, 5, 3))
    with pytest.raises(AssertionError, match="differs"):
        export.check(filt, export.keras_function(other), images, "savedmodel")


def test_fold_kernel_rejects_bad_shapes():
    with pytest.raises(ValueError):
        export.fold_kernel(np.zeros((5, 5, 3, 3), np.float32), 2)
