"""Test-wide settings: the smoke profile and a throw-away project root, set before any notebook kernel starts."""
import importlib.util
import os
import tempfile

import pytest


def pytest_configure(config):
    os.environ.setdefault("ANON_PROFILE", "smoke")
    os.environ.setdefault("ANON_ROOT", tempfile.mkdtemp(prefix="anon-tests-"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not os.environ["ANON_ROOT"].endswith(worker):  # pytest -n: a project root per worker
        os.environ["ANON_ROOT"] = os.path.join(os.environ["ANON_ROOT"], worker)
        os.makedirs(os.environ["ANON_ROOT"], exist_ok=True)


if importlib.util.find_spec("xdist"):
    def pytest_xdist_make_scheduler(config, log):
        """`pytest -n N`: the notebooks build on each other's files, so they run in order on one worker; each
        test file stays on one worker (its module fixtures are built once). The largest group starts first."""
        from xdist.scheduler import LoadScopeScheduling

        class NotebooksTogether(LoadScopeScheduling):
            def _split_scope(self, nodeid):
                return "notebooks" if nodeid.startswith("notebooks/") else nodeid.split("::")[0]

        return NotebooksTogether(config, log)


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
