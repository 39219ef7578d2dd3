"""Test-wide settings: the smoke profile and a throw-away project root, set before any notebook kernel starts."""
import os
import tempfile

import pytest


def pytest_configure(config):
    os.environ.setdefault("ANON_PROFILE", "smoke")
    os.environ.setdefault("ANON_ROOT", tempfile.mkdtemp(prefix="anon-tests-"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(NotebooksTogether())
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not os.environ["ANON_ROOT"].endswith(worker):  # pytest -n: a project root per worker
        os.environ["ANON_ROOT"] = os.path.join(os.environ["ANON_ROOT"], worker)
        os.makedirs(os.environ["ANON_ROOT"], exist_ok=True)


class NotebooksTogether:
    """`pytest -n N` (pytest-xdist): the notebooks build on each other's files, so they run in order on one
    worker; each test file stays on one worker (its module fixtures are built once). Largest group first."""

    @staticmethod
    def pytest_xdist_make_scheduler(config, log):
        from xdist.scheduler import LoadScopeScheduling

        class Scheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid):
                return "notebooks" if nodeid.startswith("notebooks/") else nodeid.split("::")[0]

        return Scheduling(config, log)


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
