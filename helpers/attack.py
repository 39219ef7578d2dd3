"""Does a frozen transform anonymise? Fresh attackers, a fresh detector and classic baselines (notebook 06).

The thesis measured only the ReID trained together with the filter (its §6.3 names the stronger test as
future work). Here the transform is frozen and new networks are trained from scratch on its output:
a Siamese MobileNetV1 ReID as in the thesis and a small plain CNN, each on pairs with both sides
transformed (the thesis's setting) and with one side left original (§6.1: can a filtered image be
matched to a known photo?), plus a detector trained on transformed images for the utility that is left.
Every network keeps its best validation step; the figures reported are on the test set.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

from helpers import config, evaluation, metrics, models

ATTACKERS = ("mobilenet", "cnn")   # the thesis's Siamese MobileNetV1 and a small plain CNN
SIDES = ("both", "one")            # both images transformed | image a transformed, image b original
SUMMARY_COLUMNS = ["dataset", "transform", "kind", "attacker", "sides", "seed", "fresh_auc", "fresh_ap",
                   "fresh_ranked_ap", "val_auc", "best_step", "co_trained_auc", "co_trained_ap", "profile"]
LUMA = (0.299, 0.587, 0.114)       # ITU-R BT.601
PREDICT_BATCH = 256                # inference only; the thesis's per-batch AP still uses the profile's batch


# --- transforms: float images (N, H, W, 3) in [0, 1] -> the same shape, in [0, 1] -------------------

def greyscale(images):
    x = tf.convert_to_tensor(images, tf.float32)
    y = tf.tensordot(x, tf.constant(LUMA, tf.float32), axes=[[3], [0]])[..., None]
    return tf.repeat(y, 3, axis=-1)


def gaussian_blur(images, sigma: float):
    """Gaussian blur with `sigma` in pixels; borders are mirrored so a solid image stays solid."""
    x = tf.convert_to_tensor(images, tf.float32)
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    r = min(r, x.shape[1] - 1, x.shape[2] - 1)
    t = np.arange(-r, r + 1, dtype=np.float32)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    kx = tf.constant(np.tile(g[None, :, None, None], (1, 1, 3, 1)))
    ky = tf.constant(np.tile(g[:, None, None, None], (1, 1, 3, 1)))
    x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "VALID")


def pixelate(images, cell: int):
    """Each cell x cell block replaced by its mean colour (edge cells are completed by mirroring)."""
    x = tf.convert_to_tensor(images, tf.float32)
    cell = int(cell)
    if cell <= 1:
        return x
    h, w = x.shape[1], x.shape[2]
    ph, pw = -h % cell, -w % cell
    if ph or pw:
        x = tf.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], mode="SYMMETRIC")
    means = tf.nn.avg_pool2d(x, cell, cell, "VALID")
    return tf.repeat(tf.repeat(means, cell, axis=1), cell, axis=2)[:, :h, :w]


def add_noise(images, std: float, generator: tf.random.Generator):
    x = tf.convert_to_tensor(images, tf.float32)
    return tf.clip_by_value(x + std * generator.normal(tf.shape(x)), 0.0, 1.0)


@dataclass
class Transform:
    """A frozen image transform with a name: a trained filter or a baseline."""
    name: str
    kind: str        # "filter" | "baseline"
    fn: object       # images -> images
    strength: str = ""

    def __call__(self, images) -> np.ndarray:
        return np.asarray(self.fn(images), dtype=np.float32)


def baseline(name: str, seed: int = 0) -> Transform:
    """One of config.BASELINES at its documented strength, scaled to the width of each batch."""
    if name not in config.BASELINES:
        raise KeyError(f"Unknown baseline {name!r}; choose one of {sorted(config.BASELINES)}.")
    p = config.BASELINES[name]
    if name == "none":
        return Transform(name, "baseline", lambda x: tf.convert_to_tensor(x, tf.float32), "identity")
    if name == "grey":
        return Transform(name, "baseline", greyscale, "BT.601 luma")
    if name == "blur":
        return Transform(name, "baseline", lambda x: gaussian_blur(x, p["sigma"] * x.shape[2]),
                         f"sigma = width/{round(1 / p['sigma'])}")
    if name == "pixelate":
        return Transform(name, "baseline", lambda x: pixelate(x, max(1, round(p["cell"] * x.shape[2]))),
                         f"{round(1 / p['cell'])} cells across")
    generator = tf.random.Generator.from_seed(seed)
    return Transform(name, "baseline", lambda x: add_noise(x, p["std"], generator), f"std {p['std']}")


def filter_transform(filt: keras.Model, name: str) -> Transform:
    """A trained filter, frozen: inference mode, traced once per image size."""
    fn = tf.function(lambda x: filt(x, training=False), reduce_retracing=True)
    return Transform(name, "filter", lambda x: fn(tf.convert_to_tensor(x, tf.float32)))


def constant(value: float = 0.5) -> Transform:
    """Every image becomes the same grey image: nothing can leak (a test's lower bound)."""
    return Transform("constant", "baseline", lambda x: tf.fill(tf.shape(x), value), f"{value}")


# --- attacker networks ---------------------------------------------------------------------------

def build_attacker(kind: str, image_shape, alpha: float, shared: bool = True, bn_momentum: float = 0.9) -> keras.Model:
    """A ReID trained from scratch. Shared weights when both images come from the same domain; two
    towers when one image is transformed and the other is not."""
    if kind not in ATTACKERS:
        raise KeyError(f"Unknown attacker {kind!r}; choose one of {ATTACKERS}.")
    if kind == "mobilenet":
        embed = lambda n: models.mobilenet_embedding(image_shape, alpha, None, name=n)  # noqa: E731
    else:
        embed = lambda n: models.plain_cnn_embedding(image_shape, name=n)  # noqa: E731
    a = embed("embedding" if shared else "embedding_a")
    b = None if shared else embed("embedding_b")
    model = models.siamese(image_shape, a, b, name=f"{kind}_attacker")
    models.set_batchnorm_momentum(model, bn_momentum)
    return model


def _reset_optimizer(opt: keras.optimizers.Optimizer) -> None:
    for v in opt.variables:
        if not v.path.endswith("learning_rate"):
            v.assign(tf.zeros_like(v))


class Trainee:
    """A network, its Adam and one traced training step, reset to a new start for every transform, so
    the (slow) tracing happens once per network rather than once per transform."""

    def __init__(self, make, loss, lr: float):
        self.make = make
        self.model = make()
        self.initial = {}  # seed -> starting weights
        self.loss = loss
        self.opt = keras.optimizers.Adam(lr)
        self.opt.build(self.model.trainable_variables)
        self.step = tf.function(self._step)
        self.predict_batch = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def _step(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.loss(y, self.model(x, training=True))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.opt.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def reset(self, seed: int, weights=None) -> None:
        """Fresh random weights drawn from `seed` (or the given weights) and a fresh optimiser."""
        if weights is None:
            if seed not in self.initial:
                keras.utils.set_random_seed(seed)
                self.initial[seed] = self.make().get_weights()
            weights = self.initial[seed]
        self.model.set_weights(weights)
        _reset_optimizer(self.opt)


def _bce(y, p):
    return tf.reduce_mean(keras.losses.binary_crossentropy(tf.reshape(y, (-1, 1)), p))


def _mse(y, p):
    return tf.reduce_mean(tf.square(y - p))


@dataclass
class PairArrays:
    a: np.ndarray
    b: np.ndarray
    labels: np.ndarray


def transformed_pairs(pairs, transform: Transform, sides: str, batch_size: int = PREDICT_BATCH) -> PairArrays:
    """A fixed pair set through the transform: both images, or image a only."""
    xa, xb = [], []
    for s in range(0, len(pairs), batch_size):
        a, b = pairs.images(s, s + batch_size)
        xa.append(transform(a))
        xb.append(transform(b) if sides == "both" else np.asarray(b, np.float32))
    return PairArrays(np.concatenate(xa), np.concatenate(xb), np.asarray(pairs.labels, np.float32))


def transformed_images(images: np.ndarray, transform: Transform, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    return np.concatenate([transform(images[s:s + batch_size]) for s in range(0, len(images), batch_size)])


def predict_pairs(trainee: Trainee, pairs: PairArrays) -> np.ndarray:
    out = [trainee.predict_batch([pairs.a[s:s + PREDICT_BATCH], pairs.b[s:s + PREDICT_BATCH]]).numpy().ravel()
           for s in range(0, len(pairs.labels), PREDICT_BATCH)]
    return np.concatenate(out)


def train_reid(trainee: Trainee, stream, transform: Transform, sides: str, val: PairArrays, test: PairArrays,
               steps: int, eval_every: int, seed: int, progress=None) -> dict:
    """Train an attacker from scratch on transformed training pairs; keep its best validation AUC."""
    trainee.reset(seed)
    best = {"val_auc": -1.0}
    history = []
    for step in range(1, steps + 1):
        _, pairs = stream.batch(step)
        a, b = pairs.images()
        xa = transform(a)
        xb = transform(b) if sides == "both" else np.asarray(b, np.float32)
        loss = float(trainee.step([xa, xb], np.asarray(pairs.labels, np.float32)))
        if not math.isfinite(loss):
            raise FloatingPointError(f"attacker loss became {loss} at step {step} on {transform.name!r}.")
        if step % eval_every == 0 or step == steps:
            auc = metrics.roc_auc(val.labels, predict_pairs(trainee, val))
            history.append({"step": step, "loss": loss, "val_auc": auc})
            if auc > best["val_auc"]:
                best = {"val_auc": auc, "best_step": step, "weights": trainee.model.get_weights()}
        if progress is not None:
            progress.update(1)
    trainee.model.set_weights(best.pop("weights"))
    test_auc = metrics.roc_auc(test.labels, predict_pairs(trainee, test))
    return {**best, "test_auc": test_auc, "history": history}


def train_detector(trainee: Trainee, stream, transform: Transform, val, test, steps: int, eval_every: int,
                   seed: int, batch_size: int, radius: float, start_weights=None, progress=None) -> dict:
    """Train a detector on transformed images (from `start_weights` or from scratch); keep the step with
    the best validation AP (ranked AP breaks ties: the thesis's AP saturates at 1)."""
    trainee.reset(seed, start_weights)
    best = {"score": (-1.0, -1.0)}
    history = []

    def measure(det_set, images):
        heat = np.concatenate([trainee.predict_batch(images[s:s + PREDICT_BATCH]).numpy()
                               for s in range(0, len(images), PREDICT_BATCH)])
        return evaluation.detector_metrics(heat, det_set, batch_size, radius)

    val_det, val_images = val
    test_det, test_images = test
    for step in range(1, steps + 1):
        det, _ = stream.batch(step)
        loss = float(trainee.step(transform(det.images), np.asarray(det.heatmaps, np.float32)))
        if not math.isfinite(loss):
            raise FloatingPointError(f"detector loss became {loss} at step {step} on {transform.name!r}.")
        if step % eval_every == 0 or step == steps:
            m = measure(val_det, val_images)
            history.append({"step": step, "loss": loss, "val_ap": m["detector_ap"], "val_ranked_ap": m["ranked_ap"]})
            score = (m["detector_ap"], m["ranked_ap"])
            if score > best["score"]:
                best = {"score": score, "val_ap": m["detector_ap"], "best_step": step,
                        "weights": trainee.model.get_weights()}
        if progress is not None:
            progress.update(1)
    trainee.model.set_weights(best.pop("weights"))
    best.pop("score")
    m = measure(test_det, test_images)
    return {**best, "test_ap": m["detector_ap"], "test_ranked_ap": m["ranked_ap"], "history": history}


class Attack:
    """Everything needed to attack transforms on one data set: the fixed validation and test sets, a
    training stream, the four attackers and the fresh detector, each traced once."""

    def __init__(self, profile, sets: dict, stream, settings: dict, detector_start: keras.Model | None = None,
                 attackers=ATTACKERS, sides=SIDES):
        from helpers.data_shapes import detector_shape, reid_shape
        self.profile, self.sets, self.stream, self.settings = profile, sets, stream, dict(settings)
        lr = config.LEARNING_RATES[profile.dataset]
        rshape = reid_shape(profile, profile.dataset)
        self.reid = {(k, s): Trainee(lambda k=k, s=s: build_attacker(k, rshape, profile.alpha, s == "both",
                                                                     profile.bn_momentum), _bce, lr["reid"])
                     for k in attackers for s in sides}
        dshape = detector_shape(profile, profile.dataset)
        if detector_start is not None:
            self.detector_weights = detector_start.get_weights()
            self.detector = Trainee(lambda: keras.models.clone_model(detector_start), _mse, lr["detector"])
        else:
            self.detector_weights = None
            self.detector = Trainee(lambda: models.build_detector(dshape, profile.alpha, None, profile.bn_momentum),
                                    _mse, profile.pretrain_detector_lr or lr["detector"])

    @property
    def steps_per_transform(self) -> int:
        return len(self.reid) * self.settings["reid_steps"] + self.settings["detector_steps"]

    def run(self, transform: Transform, seed: int, progress=None) -> dict:
        """All attackers and the fresh detector against one frozen transform."""
        p, st = self.profile, self.settings
        out = {"transform": transform.name, "kind": transform.kind, "seed": seed, "reid": {}}
        fixed = {}
        for (kind, sides), trainee in self.reid.items():
            if sides not in fixed:
                fixed[sides] = {s: transformed_pairs(self.sets[s][1], transform, sides) for s in ("val", "test")}
            r = train_reid(trainee, self.stream, transform, sides, fixed[sides]["val"], fixed[sides]["test"],
                           st["reid_steps"], st["eval_every"], seed, progress)
            out["reid"][f"{kind}/{sides}"] = r
        images = {s: (self.sets[s][0], transformed_images(self.sets[s][0].images, transform)) for s in ("val", "test")}
        out["detector"] = train_detector(self.detector, self.stream, transform, images["val"], images["test"],
                                         st["detector_steps"], st["eval_every"], seed, p.eval_batch_size,
                                         p.match_radius, self.detector_weights, progress)
        return out


def rows(result: dict, dataset: str, profile: str, co_trained: dict | None = None) -> list[dict]:
    """One row of attack_summary.csv per attacker and sides of one attacked transform."""
    co = co_trained or {}
    det = result["detector"]
    out = []
    for key, r in result["reid"].items():
        attacker, sides = key.split("/")
        out.append({"dataset": dataset, "transform": result["transform"], "kind": result["kind"],
                    "attacker": attacker, "sides": sides, "seed": result["seed"], "fresh_auc": r["test_auc"],
                    "fresh_ap": det["test_ap"], "fresh_ranked_ap": det["test_ranked_ap"], "val_auc": r["val_auc"],
                    "best_step": r["best_step"], "co_trained_auc": co.get("reid_auc"),
                    "co_trained_ap": co.get("detector_ap"), "profile": profile})
    return out


def cached(path: Path, key: dict, compute):
    """compute() once per key: results are written as soon as they exist, so a rerun after an
    interruption continues with the next transform."""
    path = Path(path)
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return saved["result"]
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "result": result}, default=float))
    tmp.replace(path)
    return result


def aggregate(df, values=("fresh_auc", "fresh_ap", "co_trained_auc", "co_trained_ap"),
              by=("dataset", "transform", "attacker", "sides")):
    """Mean, standard deviation (ddof 1; 0 for one seed) and number of seeds of each value."""
    import pandas as pd
    values = [v for v in values if v in df.columns]
    g = df.groupby(list(by), sort=False)[values]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    out = pd.concat({"mean": mean, "std": std}, axis=1)
    out.columns = [f"{v}_{stat}" for stat, v in out.columns]
    out["seeds"] = df.groupby(list(by), sort=False)["seed"].nunique()
    return out.reset_index()


def mean_std(mean, std, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
