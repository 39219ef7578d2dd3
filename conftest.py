"""Test-wide settings: the smoke profile and a throw-away project root, set before any notebook kernel starts."""
import os
import tempfile

import pytest


def pytest_configure(config):
    os.environ.setdefault("ANON_PROFILE", "smoke")
    os.environ.setdefault("ANON_ROOT", tempfile.mkdtemp(prefix="anon-tests-"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def smoke_profile():
    from helpers import config
    return config.get_profile("smoke")


@pytest.fixture(scope="session")
def smoke_nets(smoke_profile):
    """Filter, detector and ReID at smoke size, built once per test session."""
    import keras
    from helpers import models
    keras.utils.set_random_seed(0)
    return models.networks_for(smoke_profile, "squares", (5, 7, 7, 5, 3))
