"""The benchmark scripts' own arithmetic (their measurements are not asserted anywhere)."""
import importlib.util

import numpy as np
import pytest
from hypothesis import given, strategies as st

from helpers import config


def _script(name):
    spec = importlib.util.spec_from_file_location(name, config.REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


precision_quality = _script("precision_quality")


def test_seed_noise_is_twice_the_standard_error_of_the_difference_of_means():
    a, b = [0.90, 0.92, 0.94], [0.91, 0.93, 0.95]
    diff, se, ok = precision_quality.within_noise(a, b)
    assert diff == pytest.approx(0.01) and se == pytest.approx(np.sqrt(2 * 0.0004 / 3)) and ok
    assert not precision_quality.within_noise(a, [0.80, 0.81, 0.82])[2]


seeds = st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=5)


@given(seeds, seeds, st.floats(-0.5, 0.5))
def test_the_verdict_is_the_same_either_way_round_and_after_a_common_shift(a, b, shift):
    forward, backward = precision_quality.within_noise(a, b), precision_quality.within_noise(b, a)
    assert forward[0] == pytest.approx(-backward[0], abs=1e-12) and forward[1] == pytest.approx(backward[1])
    shifted = precision_quality.within_noise([x + shift for x in a], [x + shift for x in b])
    assert shifted[0] == pytest.approx(forward[0], abs=1e-9)
