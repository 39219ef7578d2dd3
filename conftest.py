"""Test-wide settings: the smoke profile and a throw-away project root, set before any notebook kernel starts."""
import os
import tempfile

import pytest

import helpers  # noqa: F401  TensorFlow's runtime options (helpers/__init__.py), before TensorFlow starts


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


# The slowest groups of the suite (seconds on one of our two cores, 2026-12-02: notebooks 425, training 362
# before its loop tests moved to test_training_runs.py, the TVPR pipeline 245, drills 114, models 83): handed
# out first, so that no long group starts last while the other worker idles. Other files follow in collection order.
SLOW_FIRST = ("notebooks/", "tests/test_tvpr_pipeline.py", "tests/test_training.py", "tests/test_training_runs.py",
              "tests/test_drills.py", "tests/test_models.py")


def _rank(nodeid: str) -> int:
    return next((i for i, prefix in enumerate(SLOW_FIRST) if nodeid.startswith(prefix)), len(SLOW_FIRST))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker collects; the order it reports is the queue's
        items.sort(key=lambda item: _rank(item.nodeid))  # stable: cells and tests keep their order


class NotebooksTogether:
    """`pytest -n N` (pytest-xdist): the notebooks build on each other's files, so they run in order on one
    worker; each test file stays on one worker (its module fixtures are built once). Slowest groups first
    (SLOW_FIRST), not xdist's largest-by-count first, which started the one-test TVPR pipeline last."""

    @staticmethod
    def pytest_xdist_make_scheduler(config, log):
        from xdist.scheduler import LoadScopeScheduling

        class Scheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid):
                return "notebooks" if nodeid.startswith("notebooks/") else nodeid.split("::")[0]

        config.option.loadscopereorder = False  # keep the order pytest_collection_modifyitems made
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
