"""The three training steps of thesis Algorithm 1, one traced iteration made of them, and the loop around it."""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers.images import quantize, quantize_straight_through
from helpers import runs
from helpers.config import LAMBDA
from helpers.optimizers import Adam
from helpers.losses import (bce, check_invariance, check_privacy, contrast_floor_loss, invariance_term, mse,
                           privacy_loss)

ROUNDING = ("none", "detector", "adversaries", "all")
RESTART_STREAM_OFFSET = 10_000_000  # restart batches come from far beyond the loop's own batch numbers

# On this CPU training repeats bit for bit without it (tests/test_training.py, the kill drills); ANON_DETERMINISTIC=1
# asks TensorFlow to guarantee it (op determinism: an error for ops that have no deterministic kernel).
if os.environ.get("ANON_DETERMINISTIC"):
    tf.config.experimental.enable_op_determinism()


@dataclass
class Networks:
    filter: keras.Model | None
    detector: keras.Model
    reid: keras.Model | list  # the thesis's one ReID, or a pool of ReIDs the filter fights together

    @property
    def reids(self) -> list:
        return list(self.reid) if isinstance(self.reid, (list, tuple)) else [self.reid]


@contextlib.contextmanager
def eagerly():
    """Inside, traced steps run as plain Python: called once (notebook 04's steps by hand), a step costs
    less untraced than tracing it (tens of seconds for three MobileNets on our CPU)."""
    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(before)


def reset_optimizer(opt: keras.optimizers.Optimizer) -> None:
    """Forget an optimiser's state (Adam's moments and step count); its learning rate stays."""
    for v in opt.variables:
        if not v.path.endswith("learning_rate"):
            v.assign(tf.zeros_like(v))


def reseed(seed: int) -> None:
    """Python's and NumPy's random state set from `seed`: all that Keras's initialisers draw from (their seeds
    come from Python's `random`), so new weights are those `keras.utils.set_random_seed(seed)` would give.
    TensorFlow's global seed is left alone on purpose: setting it clears TensorFlow's kernel caches, and
    every traced step then rebuilds its kernels on its next call (35 s for notebook 06's four attackers on
    our CPU, each time). No traced step draws from that seed."""
    random.seed(seed)
    np.random.seed(seed)


def reinitialise(model: keras.Model, seed: int) -> None:
    """New random weights (and fresh BatchNorm statistics) for `model`, drawn from `seed`."""
    reseed(seed)
    model.set_weights(keras.models.clone_model(model).get_weights())


def strategy_for(name: str | None):
    """None: one device. "mirrored": tf.distribute.MirroredStrategy over every GPU of this machine, or,
    without GPUs, over the logical CPU devices (tests split the CPU in two). The profile's batch_size is
    the global batch: each of N devices gets batch_size / N, and the learning rates stay the thesis's."""
    if name is None:
        return None
    if name != "mirrored":
        raise ValueError(f"STRATEGY={name!r}: use None (one device) or 'mirrored'.")
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def scope(strategy):
    """Build networks inside this, so that their variables live on every replica."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


class Steps:
    """Algorithm 1 as three traced functions, one per network: detector (a), ReID (b), filter (c);
    and `iteration`, the same three in one traced call.

    'Frozen' means 'not in the variable list the tape differentiates'; frozen networks run in
    inference mode (training=False), so their BatchNorm uses moving statistics. With a pool of ReIDs
    the ReID step updates every member and the filter descends against the strongest one: the largest
    of their privacy terms (the K-beam idea of Hamm & Noh 2018).
    `invariance`: the weight of an attacker-free privacy term added to the adversaries' (losses.invariance_term:
    how far apart the filtered images of each ReID pair are, as images or as colours, `invariance_of`; absolute
    or per unit of the filtered detector images' contrast, `invariance_scale`); 0 is the thesis.
    `min_contrast`: a floor under the filtered detector images' contrast (losses.contrast_floor_loss); 0: none.
    `rounding`: 'none' (the thesis); 'detector': the detector learns on the 8-bit output a user would
    publish; 'adversaries': the ReIDs too; 'all': the filter step sees it as well, through a
    straight-through gradient.
    `strategy`: a tf.distribute strategy (MirroredStrategy: several GPUs of one machine) under whose scope
    the networks were built; every step then splits each batch evenly over its replicas, each replica
    scales its loss by 1/replicas and the optimisers sum the gradients, so an update is the one the whole
    batch gives on one device (BatchNorm in training mode normalises each replica's share by itself).
    """

    def __init__(self, nets: Networks, lr_detector: float, lr_reid: float, lr_filter: float | None,
                 privacy: str = "thesis", lam: float = LAMBDA, rounding: str = "none", strategy=None,
                 invariance: float = 0.0, invariance_of: str = "images", invariance_scale: str = "absolute",
                 min_contrast: float = 0.0):
        if rounding not in ROUNDING:
            raise ValueError(f"Unknown rounding {rounding!r}; use one of {ROUNDING}.")
        self.nets = nets
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        self.privacy = check_privacy(privacy)  # an unknown term fails here, not mid-run
        self.lam = float(lam)
        self.invariance = float(invariance)
        if self.invariance < 0:
            raise ValueError(f"invariance={invariance}: the weight of the invariance term is >= 0.")
        self.invariance_of, self.invariance_scale = check_invariance(invariance_of, invariance_scale)
        self.min_contrast = float(min_contrast)
        if not 0 <= self.min_contrast < 0.5:
            raise ValueError(f"min_contrast={min_contrast}: use 0 (no floor) or a contrast below 0.5.")
        self.rounding = rounding
        # One forward pass of the filter can serve both the adversaries (inference mode) and the filter step
        # (training mode) only if no layer of it behaves differently in the two.
        self.shared_forward = nets.filter is not None and not any(
            isinstance(l, (keras.layers.BatchNormalization, keras.layers.Dropout))
            for l in nets.filter._flatten_layers(include_self=False, recursive=True))
        with scope(strategy):
            self.opt_detector = Adam(lr_detector)
            self.opt_reids = [Adam(lr_reid) for _ in nets.reids]
            self.opt_filter = Adam(lr_filter) if nets.filter is not None else None
            if strategy is not None:  # optimiser state is created here, not inside a replica's traced step
                self.opt_detector.build(nets.detector.trainable_variables)
                for opt, reid in zip(self.opt_reids, nets.reids):
                    opt.build(reid.trainable_variables)
                if self.opt_filter is not None:
                    self.opt_filter.build(nets.filter.trainable_variables)
        self.detector_step = self._traced(self._detector_step)
        self.reid_step = self._traced(self._reid_step)
        self.filter_step = self._traced(self._filter_step)
        self.iteration = self._traced(self._iteration)

    def _traced(self, step):
        """`step` as a traced function; with a strategy, each replica runs it on its share of the batch
        and what it returns is averaged over the replicas."""
        if self.strategy is None:
            return tf.function(step)
        strategy, mean = self.strategy, tf.distribute.ReduceOp.MEAN

        def replicated(*args, **kwargs):
            out = strategy.run(step, args=args, kwargs=kwargs)
            return tf.nest.map_structure(lambda v: strategy.reduce(mean, v, axis=None), out)

        traced = tf.function(replicated)

        def call(*args, **kwargs):
            return traced(*(self._shares(a) for a in args), **kwargs)
        return call

    def _shares(self, batch):
        """A batch cut into equal shares, one per replica."""
        n = self.replicas
        batch = tf.convert_to_tensor(batch)
        if batch.shape[0] % n:
            raise ValueError(f"A batch of {batch.shape[0]} does not split evenly over {n} replicas: make the "
                             "profile's batch_size a multiple of the number of devices.")
        parts = tf.split(batch, n)
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: parts[ctx.replica_id_in_sync_group])


    # --- the filter as the adversaries see it -------------------------------------------------------
    def filtered(self, x, for_reid: bool = False):
        """The filter's output without gradient, rounded to 8 bits if that network learns on it."""
        if self.nets.filter is None:
            return tf.convert_to_tensor(x, tf.float32)
        return self._rounded(tf.cast(self.nets.filter(x, training=False), tf.float32), for_reid)

    def _filter_with_gradient(self, x):
        y = tf.cast(self.nets.filter(x, training=True), tf.float32)
        return quantize_straight_through(y) if self.rounding == "all" else y

    # --- one update of each network, on images the filter already produced --------------------------
    def _detector_update(self, x, heatmaps):
        det = self.nets.detector
        with tf.GradientTape() as tape:
            loss = mse(heatmaps, det(x, training=True))
            share = loss / self.replicas  # summed over replicas by the optimiser: the whole batch's gradient
        grads = tape.gradient(share, det.trainable_variables)
        self.opt_detector.apply_gradients(zip(grads, det.trainable_variables))
        return loss

    def _reid_update(self, xa, xb, same):
        losses = []
        for reid, opt in zip(self.nets.reids, self.opt_reids):
            with tf.GradientTape() as tape:
                loss = bce(same, reid([xa, xb], training=True))
                share = loss / self.replicas
            grads = tape.gradient(share, reid.trainable_variables)
            opt.apply_gradients(zip(grads, reid.trainable_variables))
            losses.append(loss)
        return tf.stack(losses)

    def _filter_update(self, images, heatmaps, images_a, images_b, same):
        with tf.GradientTape() as tape:
            filtered = [self._filter_with_gradient(v) for v in (images, images_a, images_b)]
            out = self._filter_loss(*filtered, heatmaps, same)
            share = out[0] / self.replicas  # summed over replicas by the optimiser: the whole batch's gradient
        self._apply_filter_gradient(tape, share)
        return out

    def _filter_loss(self, filtered, fa, fb, heatmaps, same):
        """Thesis Eq. 4 on filtered images the tape has seen being made: the frozen detector's MSE plus the
        strongest ReID's privacy term (and the optional invariance and contrast terms)."""
        heat = self.nets.detector(filtered, training=False)
        terms = tf.stack([privacy_loss(self.privacy, same, reid([fa, fb], training=False), self.lam)
                          for reid in self.nets.reids])
        utility = mse(heatmaps, heat)
        privacy = tf.reduce_max(terms)  # the strongest adversary's term; its gradient alone flows
        if self.invariance:  # no adversary needed: the two images of a pair pulled to one output
            privacy = privacy + self.invariance * invariance_term(
                self.invariance_of, fa, fb, self.invariance_scale, reference=filtered)
        loss = utility + privacy
        if self.min_contrast:  # the published image has to use its bytes
            loss = loss + contrast_floor_loss(filtered, self.min_contrast)
        return loss, utility, privacy, tf.argmax(terms, output_type=tf.int32)

    def _apply_filter_gradient(self, tape, share):
        filt = self.nets.filter
        grads = tape.gradient(share, filt.trainable_variables)
        self.opt_filter.apply_gradients(zip(grads, filt.trainable_variables))

    def _rounded(self, y, for_reid: bool = False):
        """The filter's output `y` as an adversary learns on it: without gradient, in 8 bits if rounded."""
        rounded = self.rounding in ("adversaries", "all") or (self.rounding == "detector" and not for_reid)
        y = tf.stop_gradient(y)
        return quantize(y) if rounded else y

    # --- Algorithm 1, step by step (notebook 04 calls these by hand) --------------------------------
    def _detector_step(self, images, heatmaps):
        return self._detector_update(self.filtered(images), heatmaps)

    def _reid_step(self, images_a, images_b, same):
        xa, xb = self.filtered(images_a, for_reid=True), self.filtered(images_b, for_reid=True)
        return tf.reduce_mean(self._reid_update(xa, xb, same))

    def _filter_step(self, images, heatmaps, images_a, images_b, same):
        return self._filter_update(images, heatmaps, images_a, images_b, same)[:3]

    # --- the same, as one traced call ---------------------------------------------------------------
    def _adversary_updates(self, x, xa, xb, heatmaps, same, reid_steps):
        """Steps (a) and (b) x reid_steps on images already filtered: the detector's loss and the ReIDs' last."""
        detector_loss, reid_losses = self._detector_update(x, heatmaps), None
        for _ in range(reid_steps):
            reid_losses = self._reid_update(xa, xb, same)
        return detector_loss, reid_losses

    def _iteration(self, images, heatmaps, images_a, images_b, same, reid_steps: int = 1, filter_steps: int = 1):
        """Steps (a), (b) x reid_steps and (c) x filter_steps in one call. The filter does not change
        before (c), so the batch is filtered once: the first filter step's tape records that forward pass
        (the filter behaves alike in training and inference mode: convolutions only) and stops recording
        while the detector and the ReIDs learn on its output."""
        shared = filter_steps > 0 and self.shared_forward
        if shared:
            with tf.GradientTape() as tape:
                y = [self._filter_with_gradient(v) for v in (images, images_a, images_b)]
                with tape.stop_recording():
                    detector_loss, reid_losses = self._adversary_updates(
                        self._rounded(y[0]), self._rounded(y[1], True), self._rounded(y[2], True),
                        heatmaps, same, reid_steps)
                total, utility, privacy, strongest = self._filter_loss(*y, heatmaps, same)
                share = total / self.replicas
            self._apply_filter_gradient(tape, share)
        else:
            detector_loss, reid_losses = self._adversary_updates(
                self.filtered(images), self.filtered(images_a, True), self.filtered(images_b, True),
                heatmaps, same, reid_steps)
        for _ in range(filter_steps - shared):
            total, utility, privacy, strongest = self._filter_update(images, heatmaps, images_a, images_b, same)
        out = {"detector": detector_loss}
        if reid_steps:
            out["reid"] = tf.reduce_mean(reid_losses)
            if len(self.nets.reids) > 1:
                out.update({f"reid{i}": reid_losses[i] for i in range(len(self.nets.reids))})
        if filter_steps:
            out.update(filter=total, filter_mse=utility, filter_privacy=privacy)
            if len(self.nets.reids) > 1:
                out["strongest_reid"] = tf.cast(strongest, tf.float32)
        return out

    def restart_reids(self, seed: int) -> None:
        """Every ReID of the pool re-initialised at random and its optimiser's state forgotten."""
        for i, (reid, opt) in enumerate(zip(self.nets.reids, self.opt_reids)):
            reinitialise(reid, seed * 97 + i)
            reset_optimizer(opt)

    def checkpoint(self) -> tf.train.Checkpoint:
        parts = dict(detector=self.nets.detector, opt_detector=self.opt_detector)
        reids = self.nets.reids
        if len(reids) == 1:  # the names of runs saved before ReID pools existed
            parts.update(reid=reids[0], opt_reid=self.opt_reids[0])
        else:
            parts.update({f"reid{i}": r for i, r in enumerate(reids)},
                         **{f"opt_reid{i}": o for i, o in enumerate(self.opt_reids)})
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
    seconds: float = 0.0                # training and validation time over every process that ran this loop


class Loop:
    """Alternating training with validation every epoch, best-version selection and resumable
    checkpoints. An iteration is Algorithm 1 (`Steps.iteration`): detector step, ReID step(s), filter
    step(s). Every `restart_every` iterations the ReIDs start again from random weights and train
    `restart_steps` steps against the current filter before the filter moves again (the restarts of
    Wu et al. 2020).

    validate(epoch) -> dict of validation figures; score(figures) -> float, higher is better (the
    adversarial run uses minus a filter distance). Only epochs >= select_after (1-based) are candidates,
    as in the thesis's "best among the last".
    """

    def __init__(self, steps: Steps, stream, validate, out_dir, batches_per_epoch: int,
                 reid_steps: int = 1, score=None, select_after: int = 1, train_filter: bool = True,
                 filter_steps: int = 1, restart_every: int = 0, restart_steps: int = 0, seed: int = 0):
        self.steps = steps
        self.stream = stream
        self.validate = validate
        self.out_dir = Path(out_dir)
        self.batches_per_epoch = int(batches_per_epoch)
        self.reid_steps = int(reid_steps)
        self.filter_steps = int(filter_steps) if (train_filter and steps.nets.filter is not None) else 0
        self.restart_every, self.restart_steps = int(restart_every), int(restart_steps)
        self.seed = int(seed)
        self.score = score or (lambda m: -m["distance"])
        self.select_after = int(select_after)
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
        runs.write_json(self.state_file, self.state.__dict__)

    def restart(self, step: int) -> None:
        """Fresh ReIDs that first learn `restart_steps` batches on the filter as it is now."""
        self.steps.restart_reids(self.seed * 1_000_003 + step)
        for j in range(self.restart_steps):
            _, pairs = self.stream.batch(RESTART_STREAM_OFFSET + step * self.restart_steps + j)
            a, b = pairs.images()
            self.steps.reid_step(a, b, pairs.labels)

    def iteration(self, step: int) -> dict:
        """One iteration of Algorithm 1 on batch `step`; the losses stay tensors (no wait for the result)."""
        if self.restart_every and step and step % self.restart_every == 0:
            self.restart(step)
        det, pairs = self.stream.batch(step)
        a, b = pairs.images()
        return self.steps.iteration(det.images, det.heatmaps, a, b, pairs.labels,
                                    reid_steps=self.reid_steps, filter_steps=self.filter_steps)

    def fit(self, epochs: int, progress: bool = True, on_best=None, on_epoch=None) -> LoopState:
        """Train until `epochs` epochs are done in total; a rerun continues where a previous one stopped.
        A loss that is not finite stops the run with its step; the last epoch's checkpoint stays."""
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=self.state.epoch, desc="epochs", disable=not progress)
        while self.state.epoch < epochs:
            started = time.perf_counter()
            epoch = self.state.epoch + 1
            first = (epoch - 1) * self.batches_per_epoch
            losses = [self.iteration(first + i) for i in range(self.batches_per_epoch)]
            sums: dict = {}
            for i, step_losses in enumerate(losses):
                for k, v in step_losses.items():
                    sums[k] = sums.get(k, 0.0) + check_finite(f"{k} loss", v, f"step {first + i}")
            record = {"epoch": epoch, **{f"loss_{k}": v / self.batches_per_epoch for k, v in sums.items()}}
            record.update(self.validate(epoch))
            score = self.score(record) if epoch >= self.select_after else None  # only candidates are scored
            if score is not None and (self.state.best_score is None or score > self.state.best_score):
                self.state.best_epoch, self.state.best_score = epoch, float(score)
                self.state.best_metrics = dict(record)
                if on_best is not None:
                    on_best(epoch, record)
            self.state.history.append(record)
            self.state.epoch = epoch
            if on_epoch is not None:
                on_epoch(epoch, record)
            self.state.seconds += time.perf_counter() - started  # saved with the epoch, so a resume keeps it
            self._save()
            bar.update(1)
            bar.set_postfix({k: f"{record[k]:.3f}" for k in ("detector_ap", "reid_auc") if k in record})
        bar.close()
        return self.state
