"""Keras's Adam with TensorFlow's fused update kernel.

Keras 3 writes Adam's update for each variable as about 38 small operations (casts, powers, the two
moments, the step), so the optimiser alone is two thirds of a traced training step of a MobileNet:
9 042 operations of which 6 355 are Adam's at the smoke size. Each operation costs graph-building
time when a step is traced and launch time on every call. TensorFlow has had one kernel for the whole
update since its first releases (`ResourceApplyAdam`, the one Keras 2 used); this class calls it, with
the step's shared scalars (learning rate, beta powers) computed once per step instead of per variable.
The arithmetic is Keras's: m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g², w <- w - lr √(1 - b2^t) /
(1 - b1^t) · m / (√v + eps). The variables (iterations, learning rate, momentums, velocities) are
Keras's own, so checkpoints of either class load into the other and `training.reset_optimizer` works.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class Adam(keras.optimizers.Adam):
    """keras.optimizers.Adam (TensorFlow backend, amsgrad off) updating each variable with one fused kernel."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("helpers.optimizers.Adam has no amsgrad; use keras.optimizers.Adam for it.")

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Scalars shared by every variable of this step, built at the first variable of each dtype.
        # Set through __dict__: Keras tracks what is assigned to an optimiser's attributes.
        self.__dict__["_fused_scalars"] = {}
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        scalars = self.__dict__["_fused_scalars"]
        if dtype not in scalars:
            step = tf.cast(self.iterations + 1, dtype)
            beta1, beta2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
            scalars[dtype] = dict(lr=tf.cast(learning_rate, dtype), beta1=beta1, beta2=beta2,
                                  beta1_power=tf.pow(beta1, step), beta2_power=tf.pow(beta2, step),
                                  epsilon=tf.cast(self.epsilon, dtype))
        i = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(var=variable.handle, m=self._momentums[i].handle, v=self._velocities[i].handle,
                                     grad=tf.cast(gradient, dtype), **scalars[dtype])
