"""Export a trained filter (SavedModel, TFLite float32 / int8), a faster formulation of it, and checks
that every export computes what the Keras filter computes."""
from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

# Largest |export - Keras| allowed on images in [0, 1]. Float exports compute the same sums in another
# order. bfloat16 keeps 8 bits of mantissa: two grey levels of an 8-bit image. int8 rounds every
# activation to one of 256 levels of its calibrated range, five times over: four grey levels.
TOLERANCE = {
    "keras": 0.0,
    "savedmodel": 1e-5,
    "tflite_float32": 1e-5,
    "tflite_int8": 4 / 255,
    "folded_float32": 1e-5,
    "folded_bfloat16": 2 / 255,
    "openvino_float32": 1e-5,
    "openvino_bfloat16": 2 / 255,
}

FRAME = (480, 640)  # height, width of a VGA camera frame (TVPR's recordings)


def conv_weights(filt: keras.Model) -> list[np.ndarray]:
    """The five 3x3 kernels (HWIO) of a filter built by helpers.models.build_filter."""
    convs = [layer for layer in filt.layers if isinstance(layer, keras.layers.Conv2D)]
    if len(convs) != 5 or any(layer.use_bias for layer in convs):
        raise ValueError(f"{filt.name}: expected the thesis filter (five bias-free 3x3 convolutions).")
    return [np.asarray(layer.kernel) for layer in convs]


def filter_flops(filt: keras.Model, height: int = FRAME[0], width: int = FRAME[1]) -> int:
    """Multiply-adds x 2 of the five convolutions on one height x width frame (activations not counted)."""
    return int(2 * height * width * sum(int(np.prod(w.shape)) for w in conv_weights(filt)))


@contextlib.contextmanager
def _quiet():
    """Silence the converters' chatter ("Saved artifact at", "Assets written to", deprecations)."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def fixed_size(filt: keras.Model, height: int, width: int) -> keras.Model:
    """The same layers on a fixed (1, height, width, 3) input, which TFLite's converter wants."""
    inputs = keras.Input((height, width, 3), batch_size=1, name="image")
    return keras.Model(inputs, filt(inputs), name=f"{filt.name}_{height}x{width}")


# --- SavedModel ---------------------------------------------------------------------------------------

def export_saved_model(filt: keras.Model, directory) -> Path:
    """A SavedModel whose `serve` signature takes float32 images (N, H, W, 3) of any size in [0, 1]."""
    directory = Path(directory)
    archive = keras.export.ExportArchive()
    archive.track(filt)
    archive.add_endpoint("serve", lambda x: filt(x, training=False),
                         input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])
    with _quiet():
        archive.write_out(str(directory), verbose=False)
    return directory


class SavedModelFilter:
    """Calls an exported SavedModel like the Keras filter: float32 (N, H, W, 3) in, same shape out."""

    def __init__(self, directory):
        directory = Path(directory)
        if not (directory / "saved_model.pb").exists():
            raise FileNotFoundError(f"{directory} holds no saved_model.pb: export it with export_saved_model().")
        self.module = tf.saved_model.load(str(directory))

    def __call__(self, images) -> np.ndarray:
        return self.module.serve(tf.convert_to_tensor(images, tf.float32)).numpy()


# --- TFLite --------------------------------------------------------------------------------------------

def export_tflite(filt: keras.Model, path, size=FRAME, quantize: str | None = None,
                  representative=None) -> Path:
    """TFLite flatbuffer for (1, height, width, 3) float32 frames; quantize="int8" stores weights and
    activations in 8 bits, calibrated on `representative` (images in [0, 1], any count >= 1)."""
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize={quantize!r}: use None (float32) or 'int8'.")
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed_size(filt, *size))
    if quantize == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 quantisation needs representative images to calibrate activation ranges.")
        frames = [_resize(np.asarray(img, np.float32), size) for img in representative]

        def calibration():
            for frame in frames:
                yield [frame[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Float input and output keep the calling code identical; the convolutions run in int8 inside.
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet():
        path.write_bytes(converter.convert())
    return path


def _resize(image: np.ndarray, size) -> np.ndarray:
    if image.shape[:2] == tuple(size):
        return image
    return tf.image.resize(image, size, method="bilinear").numpy()


def _interpreter(path, threads):
    try:  # LiteRT is TFLite's successor; tf.lite.Interpreter still works in TF 2.21 but warns
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(model_path=str(path), num_threads=threads)


class TFLiteFilter:
    """Calls a TFLite export like the Keras filter; other frame sizes resize the interpreter's input."""

    def __init__(self, path, threads: int = 2):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: export it with export_tflite().")
        self.interpreter = _interpreter(path, threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.shape = tuple(self.interpreter.get_input_details()[0]["shape"])

    def frame(self, image: np.ndarray) -> np.ndarray:
        """One (H, W, 3) float32 image."""
        shape = (1, *image.shape)
        if shape != self.shape:
            self.interpreter.resize_tensor_input(self.input, shape)
            self.interpreter.allocate_tensors()
            self.shape = shape
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(image[None], np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)[0]

    def __call__(self, images) -> np.ndarray:
        return np.stack([self.frame(np.asarray(img, np.float32)) for img in images])


# --- OpenVINO -------------------------------------------------------------------------------------------

def export_openvino(filt: keras.Model, directory) -> Path:
    """OpenVINO IR (filter.xml + filter.bin, float32 weights) for images of any size, via a SavedModel."""
    import openvino as ov
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    saved = export_saved_model(filt, directory / "savedmodel")
    ov.save_model(ov.convert_model(str(saved)), str(directory / "filter.xml"), compress_to_fp16=False)
    return directory / "filter.xml"


class OpenVINOFilter:
    """Calls an OpenVINO IR like the Keras filter. precision="bfloat16" asks OpenVINO's CPU plugin to
    compute in bfloat16 (AMX / AVX-512 BF16 where the CPU has them, float32 elsewhere)."""

    def __init__(self, path, precision: str = "float32"):
        import openvino as ov
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision={precision!r}: use 'float32' or 'bfloat16'.")
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: export it with export_openvino().")
        self.core, self.model = ov.Core(), ov.Core().read_model(str(path))
        self.config = {"INFERENCE_PRECISION_HINT": {"float32": "f32", "bfloat16": "bf16"}[precision],
                       "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = {}  # one compiled model per input shape: static shapes run faster than dynamic ones

    def __call__(self, images) -> np.ndarray:
        images = np.ascontiguousarray(images, np.float32)
        if images.shape not in self.compiled:
            model = self.model.clone()
            model.reshape({0: list(images.shape)})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self.compiled[images.shape] = (compiled.create_infer_request(), compiled.output(0))
        request, output = self.compiled[images.shape]
        return request.infer({0: images})[output]


# --- A faster formulation --------------------------------------------------------------------------------

def fold_kernel(kernel: np.ndarray, k: int) -> np.ndarray:
    """A 3x3 kernel (HWIO) rewritten for images whose k neighbouring pixels in a row are stacked as
    channels: (H, W, C) -> (H, W/k, k*C), which is only a reshape in memory."""
    kh, kw, cin, cout = kernel.shape
    if (kh, kw) != (3, 3) or k < 1:
        raise ValueError(f"fold_kernel needs a 3x3 kernel and k >= 1, got {kernel.shape} and k={k}.")
    folded = np.zeros((3, 3, k * cin, k * cout), kernel.dtype)
    for block in (-1, 0, 1):          # the folded column to the left, this one, the one to the right
        for p in range(k):            # input pixel within its block
            for q in range(k):        # output pixel within its block
                dx = block * k + p - q
                if -1 <= dx <= 1:
                    folded[:, block + 1, p * cin:(p + 1) * cin, q * cout:(q + 1) * cout] = kernel[:, dx + 1]
    return folded


class FoldedFilter:
    """The same filter computed on width-folded images, optionally in bfloat16.

    Five 3x3 convolutions with 3-7 channels leave a CPU's vector units mostly idle; stacking k pixels
    of a row as channels gives wider matrices at the price of k times the multiply-adds on zeros.
    Without biases, zero padding of the folded image is exactly the filter's zero padding."""

    def __init__(self, filt: keras.Model, k: int = 2, dtype: str = "float32"):
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype={dtype!r}: use 'float32' or 'bfloat16'.")
        self.k, self.dtype = int(k), tf.as_dtype(dtype)
        self.kernels = [tf.constant(fold_kernel(w, self.k), self.dtype) for w in conv_weights(filt)]
        self._run = tf.function(self._folded, input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])

    def _folded(self, images):
        shape = tf.shape(images)
        n, h, w = shape[0], shape[1], shape[2]
        pad = (-w) % self.k  # zero columns on the right change nothing to the left of them
        x = tf.pad(images, [[0, 0], [0, 0], [0, pad], [0, 0]])
        x = tf.cast(tf.reshape(x, (n, h, (w + pad) // self.k, self.k * 3)), self.dtype)
        inside = tf.range(w + pad) < w
        for i, kernel in enumerate(self.kernels):
            x = tf.nn.conv2d(x, kernel, 1, "SAME")
            if i == len(self.kernels) - 1:
                x = tf.sigmoid(x)
                break
            x = tf.nn.relu(x)
            # padding columns must stay zero, as the filter's own zero padding is, or they leak inwards
            mask = tf.reshape(tf.repeat(tf.cast(inside, self.dtype), kernel.shape[-1] // self.k),
                              (1, 1, -1, kernel.shape[-1]))
            x = tf.cond(pad > 0, lambda: x * mask, lambda: x)
        x = tf.reshape(tf.cast(x, tf.float32), (n, h, w + pad, 3))
        return x[:, :, :w]

    def __call__(self, images) -> np.ndarray:
        return self._run(tf.convert_to_tensor(images, tf.float32)).numpy()


# --- Checks and timing -----------------------------------------------------------------------------------

def keras_function(filt: keras.Model):
    """The Keras filter as one traced function, the plain-TensorFlow reference for speed and output."""
    run = tf.function(lambda x: filt(x, training=False),
                      input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    return lambda images: run(tf.convert_to_tensor(images, tf.float32)).numpy()


def max_difference(filt: keras.Model, candidate, images) -> float:
    """Largest absolute difference between the Keras filter and `candidate` on `images` in [0, 1]."""
    images = np.asarray(images, np.float32)
    reference = filt(images, training=False)
    return float(np.max(np.abs(np.asarray(reference) - np.asarray(candidate(images)))))


def check(filt: keras.Model, candidate, images, fmt: str) -> float:
    """max_difference, raising if it exceeds TOLERANCE[fmt]."""
    diff = max_difference(filt, candidate, images)
    if not diff <= TOLERANCE[fmt]:
        raise AssertionError(f"{fmt}: output differs from the Keras filter by {diff:.2e} "
                             f"(tolerance {TOLERANCE[fmt]:.2e}).")
    return diff


def frames_per_second(run, frame: np.ndarray, seconds: float = 3.0, warmup: int = 2) -> float:
    """Frames per second of run(frame) over at least `seconds` after `warmup` calls."""
    for _ in range(warmup):
        run(frame)
    count, started = 0, time.perf_counter()
    while True:
        run(frame)
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and count >= 3:
            return count / elapsed
