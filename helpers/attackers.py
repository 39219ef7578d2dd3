"""Networks trained from scratch against a frozen transform: ReID attackers and a fresh detector.

The thesis measured only the ReID trained together with the filter (its §6.3 names the stronger test as
future work). Here a transform is frozen and new networks learn on its output: a Siamese MobileNetV1
ReID as in the thesis and a small plain CNN, each on pairs with both images transformed and with image
b left original (§6.1: can a filtered image be matched to a known photo?), and a detector for the
utility that is left. Each keeps its best validation step and stops once validation has not improved
for `patience` evaluations; only then is it measured on the test set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from helpers import config, evaluation, metrics, models
from helpers.losses import bce, mse
from helpers.optimizers import Adam
from helpers.training import reseed, reset_optimizer

ATTACKERS = ("mobilenet", "cnn")   # the thesis's Siamese MobileNetV1 and a small plain CNN
SIDES = ("both", "one")            # both images transformed | image a transformed, image b original
PREDICT_BATCH = 256                # inference only; the thesis's per-batch AP still uses the profile's batch


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


class Trainee:
    """A network, its Adam and one traced training step, reset to a new start for every transform, so
    the (slow) tracing happens once per network rather than once per transform."""

    def __init__(self, make, loss, lr: float):
        self.make = make
        self.model = make()
        self.initial = {}  # seed -> starting weights
        self.loss = loss
        self.opt = Adam(lr)
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
                reseed(seed)
                self.initial[seed] = self.make().get_weights()
            weights = self.initial[seed]
        self.model.set_weights(weights)
        reset_optimizer(self.opt)


class ReidSquad:
    """Several ReID attackers, keyed (kind, sides), trained by one traced call per batch. A member whose
    validation has stopped improving is left out of later updates (`active`), so each member ends
    exactly as if it had been trained alone on the same batches."""

    def __init__(self, members: dict):
        self.members = dict(members)
        self.step = tf.function(self._step)

    def _step(self, xa, xb, b_original, labels, active):
        losses = []
        for i, ((_, sides), t) in enumerate(self.members.items()):
            x = [xa, xb] if sides == "both" else [xa, b_original]
            losses.append(tf.cond(active[i], lambda t=t, x=x: t._step(x, labels), lambda: tf.constant(0.0)))
        return tf.stack(losses)


@dataclass
class PairArrays:
    a: np.ndarray
    b: np.ndarray
    labels: np.ndarray


def transformed_pairs(pairs, transform, sides: str, batch_size: int = PREDICT_BATCH) -> PairArrays:
    """A fixed pair set through the transform: both images, or image a only."""
    xa, xb = [], []
    for s in range(0, len(pairs), batch_size):
        a, b = pairs.images(s, s + batch_size)
        xa.append(transform(a))
        xb.append(transform(b) if sides == "both" else np.asarray(b, np.float32))
    return PairArrays(np.concatenate(xa), np.concatenate(xb), np.asarray(pairs.labels, np.float32))


def transformed_images(images: np.ndarray, transform, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    return np.concatenate([transform(images[s:s + batch_size]) for s in range(0, len(images), batch_size)])


def exact_attack_auc(transform, pairs, batch_size: int = PREDICT_BATCH) -> float:
    """The highest AUC any attacker can reach on a squares pair set through `transform`, computed
    rather than trained for: a squares ReID image is one solid colour, so the transform's output for
    it is one fixed image, and all an attacker sees of a pair is which two outputs it got. Pairs whose
    outputs match exactly (byte for byte, as published) are indistinguishable to every network, and
    metrics.best_pair_auc ranks the groups of indistinguishable pairs in the best order there is."""
    if not hasattr(pairs, "colours_a"):
        raise TypeError("exact_attack_auc needs solid-colour (squares) pairs; a TVPR crop has no such shortcut.")
    colours, where = np.unique(np.concatenate([pairs.colours_a, pairs.colours_b]), axis=0, return_inverse=True)
    from helpers.squares import solid_images
    out = transformed_images(solid_images(colours, pairs.size), transform, batch_size)
    _, key = np.unique(out.reshape(len(out), -1), axis=0, return_inverse=True)
    key = key.reshape(-1)[where.reshape(-1)]
    return metrics.best_pair_auc(key[:len(pairs)], key[len(pairs):], pairs.labels)


def predict(trainee: Trainee, *arrays) -> np.ndarray:
    """The network in inference mode over arrays of equal length, in batches of PREDICT_BATCH; the last
    batch is padded so that one traced function serves every call."""
    out, n = [], len(arrays[0])
    for s in range(0, n, PREDICT_BATCH):
        part = [a[s:s + PREDICT_BATCH] for a in arrays]
        short = PREDICT_BATCH - len(part[0])
        if short:
            part = [np.concatenate([p, np.zeros((short, *p.shape[1:]), p.dtype)]) for p in part]
        y = trainee.predict_batch(part if len(part) > 1 else part[0]).numpy()
        out.append(y[:PREDICT_BATCH - short])
    return np.concatenate(out)


def predict_pairs(trainee: Trainee, pairs: PairArrays) -> np.ndarray:
    return predict(trainee, pairs.a, pairs.b).ravel()


class _Best:
    """The best validation score of one network so far, its weights, and how long it has not improved."""

    def __init__(self):
        self.score, self.step, self.weights, self.stale = None, None, None, 0
        self.history = []

    def update(self, step: int, score, model: keras.Model) -> None:
        if self.score is None or score > self.score:
            self.score, self.step, self.weights, self.stale = score, step, model.get_weights(), 0
        else:
            self.stale += 1


def train_reids(squad: ReidSquad, stream, transform, val: dict, test: dict, max_steps: int, eval_every: int,
                seed: int, patience: int | None = None, progress=None) -> dict:
    """Train every attacker of the squad from scratch on transformed training pairs, each until its
    validation AUC has not improved for `patience` evaluations (None: never stops early) or `max_steps`.
    val / test: {sides: PairArrays}; test None: no test figure (a choice is being made).
    Returns {"kind/sides": {val_auc, best_step, steps, test_auc, history}}."""
    keys = list(squad.members)
    for t in squad.members.values():
        t.reset(seed)
    best = {k: _Best() for k in keys}
    active = np.ones(len(keys), bool)
    steps_done = dict.fromkeys(keys, 0)
    for step in range(1, max_steps + 1):
        _, pairs = stream.batch(step)
        a, b = pairs.images()
        xa, xb = transform(a), transform(b)
        losses = squad.step(xa, xb, np.asarray(b, np.float32), np.asarray(pairs.labels, np.float32),
                            tf.constant(active)).numpy()
        for i, k in enumerate(keys):
            if active[i]:
                steps_done[k] = step
                if not math.isfinite(float(losses[i])):
                    raise FloatingPointError(f"attacker {k} loss became {losses[i]} at step {step} on {transform.name!r}.")
        if step % eval_every == 0 or step == max_steps:
            for i, k in enumerate(keys):
                if not active[i]:
                    continue
                t = squad.members[k]
                auc = metrics.roc_auc(val[k[1]].labels, predict_pairs(t, val[k[1]]))
                best[k].history.append({"step": step, "loss": float(losses[i]), "val_auc": auc})
                best[k].update(step, auc, t.model)
                if patience is not None and best[k].stale >= patience:
                    active[i] = False
        if progress is not None:
            progress.update(1)
        if not active.any():
            break
    out = {}
    for k in keys:
        t = squad.members[k]
        t.model.set_weights(best[k].weights)
        out[f"{k[0]}/{k[1]}"] = {"val_auc": best[k].score, "best_step": best[k].step, "steps": steps_done[k],
                                 "history": best[k].history}
        if test is not None:
            out[f"{k[0]}/{k[1]}"]["test_auc"] = metrics.roc_auc(test[k[1]].labels, predict_pairs(t, test[k[1]]))
    return out


def train_detector(trainee: Trainee, stream, transform, val, test, max_steps: int, eval_every: int,
                   seed: int, batch_size: int, radius: float, start_weights=None, patience: int | None = None,
                   progress=None) -> dict:
    """Train a detector on transformed images (from `start_weights` or from scratch) until its
    validation AP has not improved for `patience` evaluations or `max_steps`; keep the step with the
    best validation AP (ranked AP breaks ties: the thesis's AP saturates at 1).
    val / test: (detector set, its transformed images)."""
    trainee.reset(seed, start_weights)
    best = _Best()

    def measure(det_set, images):
        return evaluation.detector_metrics(predict(trainee, images), det_set, batch_size, radius)

    val_det, val_images = val
    test_det, test_images = test
    step = 0
    for step in range(1, max_steps + 1):
        det, _ = stream.batch(step)
        loss = float(trainee.step(transform(det.images), np.asarray(det.heatmaps, np.float32)))
        if not math.isfinite(loss):
            raise FloatingPointError(f"detector loss became {loss} at step {step} on {transform.name!r}.")
        if step % eval_every == 0 or step == max_steps:
            m = measure(val_det, val_images)
            best.history.append({"step": step, "loss": loss, "val_ap": m["detector_ap"], "val_ranked_ap": m["ranked_ap"]})
            best.update(step, (m["detector_ap"], m["ranked_ap"]), trainee.model)
        if progress is not None:
            progress.update(1)
        if patience is not None and best.stale >= patience:
            break
    trainee.model.set_weights(best.weights)
    m = measure(test_det, test_images)
    return {"val_ap": best.score[0], "best_step": best.step, "steps": step, "test_ap": m["detector_ap"],
            "test_ranked_ap": m["ranked_ap"], "history": best.history}


class Attack:
    """Everything needed to attack transforms on one data set: the fixed validation and test sets, a
    training stream, the ReID attackers (one traced squad) and the fresh detector, each traced once.
    settings: config.ATTACK[dataset][profile] (max steps, eval_every, patience, and the attacker
    kinds if the profile has fewer than ATTACKERS; an `attackers` argument overrides them)."""

    def __init__(self, profile, sets: dict, stream, settings: dict, detector_start: keras.Model | None = None,
                 attackers=None, sides=SIDES):
        from helpers.data_shapes import detector_shape, reid_shape
        self.profile, self.sets, self.stream, self.settings = profile, sets, stream, dict(settings)
        attackers = attackers or settings.get("attackers", ATTACKERS)  # a profile may attack with fewer kinds
        lr = config.LEARNING_RATES[profile.dataset]
        rshape = reid_shape(profile, profile.dataset)
        self.reid = {(k, s): Trainee(lambda k=k, s=s: build_attacker(k, rshape, profile.alpha, s == "both",
                                                                     profile.bn_momentum), bce, lr["reid"])
                     for k in attackers for s in sides}
        self.squad = ReidSquad(self.reid)
        dshape = detector_shape(profile, profile.dataset)
        if detector_start is not None:
            self.detector_weights = detector_start.get_weights()
            self.detector = Trainee(lambda: keras.models.clone_model(detector_start), mse, lr["detector"])
        else:
            self.detector_weights = None
            self.detector = Trainee(lambda: models.build_detector(dshape, profile.alpha, None, profile.bn_momentum),
                                    mse, profile.pretrain_detector_lr or lr["detector"])

    @property
    def max_steps_per_transform(self) -> int:
        return self.settings["reid_steps"] + self.settings["detector_steps"]

    def run(self, transform, seed: int, progress=None) -> dict:
        """Every attacker and the fresh detector against one frozen transform. Each attack starts from the
        same global random state, so its figures do not depend on which attacks ran before it in this
        process (a rerun that skips the finished ones gives the same table)."""
        reseed(seed)
        p, st = self.profile, self.settings
        out = {"transform": transform.name, "kind": transform.kind, "output": transform.output, "seed": seed}
        sides = sorted({s for _, s in self.reid})  # a set's order changes with each process's string hashing
        fixed = {split: {s: transformed_pairs(self.sets[split][1], transform, s) for s in sides}
                 for split in ("val", "test")}
        out["reid"] = train_reids(self.squad, self.stream, transform, fixed["val"], fixed["test"], st["reid_steps"],
                                  st["eval_every"], seed, st.get("patience"), progress)
        images = {s: (self.sets[s][0], transformed_images(self.sets[s][0].images, transform)) for s in ("val", "test")}
        out["detector"] = train_detector(self.detector, self.stream, transform, images["val"], images["test"],
                                         st["detector_steps"], st["eval_every"], seed, p.eval_batch_size,
                                         p.match_radius, self.detector_weights, st.get("patience"), progress)
        return out


class SelectionAttack:
    """The small fresh attacker that picks a filter's kept epoch (notebook 04): a plain-CNN ReID trained
    from scratch on the filter's 8-bit output of *training* pairs, then scored on each validation pair
    set (`datasets.selection_pairs`); its figure is the highest AUC, the strongest reading."""

    def __init__(self, profile, stream, val_pairs, steps: int, eval_every: int, seed: int = 0):
        from helpers.data_shapes import reid_shape
        shape = reid_shape(profile, profile.dataset)
        self.trainee = Trainee(lambda: build_attacker("cnn", shape, profile.alpha, True, profile.bn_momentum),
                               bce, config.LEARNING_RATES[profile.dataset]["reid"])
        self.squad = ReidSquad({("cnn", "both"): self.trainee})
        self.stream = stream
        self.val_sets = list(val_pairs) if isinstance(val_pairs, (list, tuple)) else [val_pairs]
        self.steps, self.eval_every, self.seed = int(steps), int(eval_every), int(seed)

    def __call__(self, transform) -> dict:
        """{'fresh_val_auc', 'fresh_best_step'} of an attacker trained on `transform`'s training output."""
        sets = [transformed_pairs(p, transform, "both") for p in self.val_sets]
        val = {"both": PairArrays(np.concatenate([s.a for s in sets]), np.concatenate([s.b for s in sets]),
                                  np.concatenate([s.labels for s in sets]))}
        r = train_reids(self.squad, self.stream, transform, val, None, self.steps, self.eval_every, self.seed)["cnn/both"]
        aucs = [metrics.roc_auc(s.labels, predict_pairs(self.trainee, s)) for s in sets]  # at its best step
        return {"fresh_val_auc": max(aucs), "fresh_best_step": r["best_step"]}
