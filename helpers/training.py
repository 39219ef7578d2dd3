"""The three training steps of thesis Algorithm 1 and the alternating loop around them."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf
import keras

from helpers.config import LAMBDA

_bce = keras.losses.BinaryCrossentropy()


def mse(y_true, y_pred):
    return tf.reduce_mean(tf.square(tf.cast(y_true, y_pred.dtype) - y_pred))


def bce(y_true, y_pred):
    return _bce(tf.reshape(y_true, (-1, 1)), y_pred)


def privacy_loss(kind: str, same_true, same_pred, lam: float = LAMBDA):
    """The filter's privacy term. 'thesis': -BCE/lambda (Eq. 4), maximising the ReID's loss.
    'confusion': BCE against a target of 0.5, divided by lambda, so the ReID's best answer is 'unsure'."""
    if kind == "thesis":
        return -bce(same_true, same_pred) / lam
    if kind == "confusion":
        return bce(tf.fill(tf.shape(same_true), 0.5), same_pred) / lam
    raise ValueError(f"Unknown privacy term {kind!r}; use 'thesis' or 'confusion'.")


@dataclass
class Networks:
    filter: keras.Model | None
    detector: keras.Model
    reid: keras.Model


class Steps:
    """One traced function per network, as in Algorithm 1: detector (a), ReID (b), filter (c).

    'Frozen' means 'not in the variable list the tape differentiates'; frozen networks run in
    inference mode (training=False), so their BatchNorm uses moving statistics.
    """

    def __init__(self, nets: Networks, lr_detector: float, lr_reid: float, lr_filter: float | None,
                 privacy: str = "thesis", lam: float = LAMBDA):
        self.nets = nets
        self.privacy = privacy
        self.lam = float(lam)
        self.opt_detector = keras.optimizers.Adam(lr_detector)
        self.opt_reid = keras.optimizers.Adam(lr_reid)
        self.opt_filter = keras.optimizers.Adam(lr_filter) if nets.filter is not None else None
        self.detector_step = tf.function(self._detector_step)
        self.reid_step = tf.function(self._reid_step)
        self.filter_step = tf.function(self._filter_step)

    def _apply_filter(self, x, training=False):
        return x if self.nets.filter is None else self.nets.filter(x, training=training)

    def _detector_step(self, images, heatmaps):
        det = self.nets.detector
        x = self._apply_filter(images)
        with tf.GradientTape() as tape:
            loss = mse(heatmaps, det(x, training=True))
        grads = tape.gradient(loss, det.trainable_variables)
        self.opt_detector.apply_gradients(zip(grads, det.trainable_variables))
        return loss

    def _reid_step(self, images_a, images_b, same):
        reid = self.nets.reid
        xa, xb = self._apply_filter(images_a), self._apply_filter(images_b)
        with tf.GradientTape() as tape:
            loss = bce(same, reid([xa, xb], training=True))
        grads = tape.gradient(loss, reid.trainable_variables)
        self.opt_reid.apply_gradients(zip(grads, reid.trainable_variables))
        return loss

    def _filter_step(self, images, heatmaps, images_a, images_b, same):
        filt = self.nets.filter
        with tf.GradientTape() as tape:
            heat = self.nets.detector(filt(images, training=True), training=False)
            p_same = self.nets.reid([filt(images_a, training=True), filt(images_b, training=True)],
                                    training=False)
            utility = mse(heatmaps, heat)
            privacy = privacy_loss(self.privacy, same, p_same, self.lam)
            loss = utility + privacy
        grads = tape.gradient(loss, filt.trainable_variables)
        self.opt_filter.apply_gradients(zip(grads, filt.trainable_variables))
        return loss, utility, privacy

    def checkpoint(self) -> tf.train.Checkpoint:
        parts = dict(detector=self.nets.detector, reid=self.nets.reid,
                     opt_detector=self.opt_detector, opt_reid=self.opt_reid)
        if self.nets.filter is not None:
            parts.update(filter=self.nets.filter, opt_filter=self.opt_filter)
        return tf.train.Checkpoint(**parts)


def check_finite(name: str, value, where: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise FloatingPointError(f"{name} became {v} at {where}; lower the learning rate or check the inputs.")
    return v


@dataclass
class LoopState:
    epoch: int = 0                      # epochs finished
    history: list = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None
    best_metrics: dict | None = None


class Loop:
    """Alternating training with validation every epoch, best-version selection and resumable
    checkpoints. The body of an iteration is Algorithm 1: detector step, ReID step(s), filter step.

    score(metrics) -> float: higher is better (the adversarial run uses minus the filter distance).
    Only epochs >= select_after (1-based) are candidates, as in the thesis's "best among the last".
    """

    def __init__(self, steps: Steps, stream, validate, out_dir, batches_per_epoch: int,
                 reid_steps: int = 1, score=None, select_after: int = 1, train_filter: bool = True):
        self.steps = steps
        self.stream = stream
        self.validate = validate
        self.out_dir = Path(out_dir)
        self.batches_per_epoch = int(batches_per_epoch)
        self.reid_steps = int(reid_steps)
        self.score = score or (lambda m: -m["distance"])
        self.select_after = int(select_after)
        self.train_filter = train_filter and steps.nets.filter is not None
        self.state = LoopState()
        self.ckpt = steps.checkpoint()
        self.manager = tf.train.CheckpointManager(self.ckpt, self.out_dir / "checkpoints", max_to_keep=1)
        self._resume()

    @property
    def state_file(self) -> Path:
        return self.out_dir / "checkpoints" / "loop_state.json"

    def _resume(self):
        if self.manager.latest_checkpoint and self.state_file.exists():
            self.ckpt.restore(self.manager.latest_checkpoint).expect_partial()
            self.state = LoopState(**json.loads(self.state_file.read_text()))

    def _save(self):
        self.manager.save(checkpoint_number=self.state.epoch)
        self.state_file.write_text(json.dumps(self.state.__dict__, indent=1))

    def iteration(self, step: int) -> dict:
        det, pairs = self.stream.batch(step)
        a, b = pairs.images()
        losses = {"detector": self.steps.detector_step(det.images, det.heatmaps)}
        for _ in range(self.reid_steps):
            losses["reid"] = self.steps.reid_step(a, b, pairs.labels)
        if self.train_filter:
            total, utility, privacy = self.steps.filter_step(det.images, det.heatmaps, a, b, pairs.labels)
            losses.update(filter=total, filter_mse=utility, filter_privacy=privacy)
        return {k: check_finite(f"{k} loss", v, f"step {step}") for k, v in losses.items()}

    def fit(self, epochs: int, progress: bool = True, on_best=None, on_epoch=None) -> LoopState:
        """Train until `epochs` epochs are done in total; a rerun continues where a previous one stopped."""
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=self.state.epoch, desc="epochs", disable=not progress)
        while self.state.epoch < epochs:
            epoch = self.state.epoch + 1
            sums: dict = {}
            for i in range(self.batches_per_epoch):
                for k, v in self.iteration((epoch - 1) * self.batches_per_epoch + i).items():
                    sums[k] = sums.get(k, 0.0) + v
            record = {"epoch": epoch, **{f"loss_{k}": v / self.batches_per_epoch for k, v in sums.items()}}
            record.update(self.validate())
            score = self.score(record)
            if epoch >= self.select_after and (self.state.best_score is None or score > self.state.best_score):
                self.state.best_epoch, self.state.best_score = epoch, float(score)
                self.state.best_metrics = dict(record)
                if on_best is not None:
                    on_best(epoch, record)
            self.state.history.append(record)
            self.state.epoch = epoch
            if on_epoch is not None:
                on_epoch(epoch, record)
            self._save()
            bar.update(1)
            bar.set_postfix({k: f"{record[k]:.3f}" for k in ("detector_ap", "reid_auc") if k in record})
        bar.close()
        return self.state
