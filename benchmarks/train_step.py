"""Time one adversarial iteration (detector, ReID, filter step) as this project runs it against the
Keras-2-era recipe: compile/train_on_batch with `trainable` toggled on a combined model.

The project: `helpers.training.Steps.iteration`, the three steps in one traced call with the batch
filtered once, and BatchNorm on TensorFlow's fused kernel (`models.FusedBatchNormalization`).
The recipe: the same networks with Keras's own BatchNormalization, three train_on_batch calls.
Both start from identical weights and see the same batches and optimisers, in one process,
interleaved so that load on the machine hits both. The last line is `ratio=<project it/s ÷ recipe it/s>`.
"""
from __future__ import annotations

import argparse
import time

import helpers  # noqa: F401  TensorFlow's runtime options (helpers/__init__.py), before TensorFlow starts
import keras

from helpers.config import LAMBDA, LEARNING_RATES, get_profile, get_variant
from helpers.models import fuse_batchnorm, networks_for
from helpers.squares import TrainingStream
from helpers.training import Networks, Steps


def keras2_models(filt, det, reid, lr_det, lr_reid, lr_filter):
    """The classic GAN setup: each adversary compiled alone, then frozen inside a combined model."""
    # Keras 3 would default to jit_compile="auto"; XLA is several times slower on this CPU.
    det.compile(keras.optimizers.Adam(lr_det), "mse", jit_compile=False)
    reid.compile(keras.optimizers.Adam(lr_reid), "binary_crossentropy", jit_compile=False)
    filt.jit_compile = False  # used through predict_on_batch only
    det.trainable = reid.trainable = False
    image = keras.Input(det.input_shape[1:])
    a, b = keras.Input(reid.input_shape[0][1:]), keras.Input(reid.input_shape[1][1:])
    combined = keras.Model([image, a, b], [det(filt(image)), reid([filt(a), filt(b)])])
    # Thesis Eq. 4: MSE - BCE / lambda; Keras 3 multiplies by a negative weight without complaint.
    combined.compile(keras.optimizers.Adam(lr_filter), ["mse", "binary_crossentropy"],
                     loss_weights=[1.0, -1.0 / LAMBDA], jit_compile=False)
    return combined


def keras2_iteration(filt, det, reid, combined, images, heatmaps, a, b, same):
    """Detector, ReID, filter step with train_on_batch; returns the three losses."""
    # Keras 3 reads `trainable` when a train function is first traced, not at compile() as
    # Keras 2 did, so each adversary is unfrozen only around its own update.
    det.trainable = True
    l_det = det.train_on_batch(filt.predict_on_batch(images), heatmaps)
    det.trainable = False
    reid.trainable = True
    l_reid = reid.train_on_batch([filt.predict_on_batch(a), filt.predict_on_batch(b)], same)
    reid.trainable = False
    l_filter = combined.train_on_batch([images, a, b], [heatmaps, same], return_dict=True)["loss"]
    return l_det, l_reid, l_filter


def project_iteration(steps, images, heatmaps, a, b, same):
    """helpers.training.Loop's iteration with one ReID step."""
    out = steps.iteration(images, heatmaps, a, b, same, reid_steps=1, filter_steps=1)
    return float(out["detector"]), float(out["reid"]), float(out["filter"])  # float() waits for the result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    parser.add_argument("--iterations", type=int, default=20, help="timed iterations per approach")
    parser.add_argument("--variant", default="S1", help="a squares variant (kernels, filter lr)")
    parser.add_argument("--bfloat16", action="store_true", help="also time the project's iteration in mixed bfloat16")
    args = parser.parse_args()

    profile, variant = get_profile(args.profile), get_variant(args.variant)
    lrs = LEARNING_RATES[variant.dataset]
    keras.utils.set_random_seed(0)
    project = networks_for(profile, variant.dataset, variant.kernels, weights=None)
    filt = networks_for(profile, variant.dataset, variant.kernels, weights=None)[0]
    filt.set_weights(project[0].get_weights())  # identical starting points make the losses comparable
    classic = (filt, fuse_batchnorm(project[1], fused=False), fuse_batchnorm(project[2], fused=False))

    steps = Steps(Networks(*project), lrs["detector"], lrs["reid"], variant.filter_lr)
    combined = keras2_models(*classic, lrs["detector"], lrs["reid"], variant.filter_lr)
    runs = {
        "project": lambda batch: project_iteration(steps, *batch),
        "keras2": lambda batch: keras2_iteration(*classic, combined, *batch),
    }
    if args.bfloat16:
        half = networks_for(profile, variant.dataset, variant.kernels, weights=None, policy="mixed_bfloat16")
        for src, dst in zip(project, half):
            dst.set_weights(src.get_weights())
        steps_bf16 = Steps(Networks(*half), lrs["detector"], lrs["reid"], variant.filter_lr)
        runs["project_bfloat16"] = lambda batch: project_iteration(steps_bf16, *batch)
    stream = TrainingStream(profile, seed=0)
    elapsed = {name: 0.0 for name in runs}
    losses = {}
    for step in range(args.iterations + 1):
        det, pairs = stream.batch(step)
        batch = (det.images, det.heatmaps, *pairs.images(), pairs.labels)
        for name, run in runs.items():
            start = time.perf_counter()
            losses[name] = run(batch)
            seconds = time.perf_counter() - start
            if step == 0:  # first call traces every function: report apart from the timing
                print(f"{name} warm-up: {seconds:.2f} s")
            else:
                elapsed[name] += seconds

    # Matching losses after many updates show both approaches train the same variables.
    for name, values in losses.items():
        print(f"{name} last losses detector/reid/filter: " + " / ".join(f"{v:.5f}" for v in values))

    rate = {name: args.iterations / seconds for name, seconds in elapsed.items()}
    print(f"profile={profile.name} batch={profile.batch_size} image={profile.image_size} "
          f"iterations={args.iterations} precision={profile.precision}")
    for name in runs:
        print(f"{name}: {rate[name]:.3f} steps/s ({1000 / rate[name]:.1f} ms/iteration)")
    if "project_bfloat16" in rate:
        print(f"bfloat16 vs float32: {rate['project_bfloat16'] / rate['project']:.3f}")
    print(f"ratio={rate['project'] / rate['keras2']:.3f}")


if __name__ == "__main__":
    main()
