"""Shared pytest setup: markers, a seeded RNG, CUDA skipping. Run as `python -m pytest` from the root.

Markers (all CPU ones run in CI through scripts/test.sh):
  slow     end-to-end runs and full-size network passes (> ~10 s); `sh scripts/test.sh --quick`
           skips them
  jit      tests that JIT-compile the InPlace-ABN C++ extension
  cuda     needs a CUDA device (skipped without one)
  multigpu needs two or more CUDA devices (skipped otherwise)
"""
import random

import numpy as np
import pytest
import torch

from fixtures_data import tiny_cityscapes  # noqa: F401  (fixture, owner: dataset tests)


def pytest_configure(config):
    for line in ("slow: end-to-end runs and full-size network passes (run in CI; --quick skips)",
                 "jit: JIT-compiles the InPlace-ABN extension (run in CI)",
                 "cuda: needs a CUDA device",
                 "multigpu: needs two or more CUDA devices"):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config, items):
    cuda = torch.cuda.is_available()
    multi = cuda and torch.cuda.device_count() > 1
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    skip_multi = pytest.mark.skip(reason="needs two or more CUDA devices")
    for item in items:
        if "cuda" in item.keywords and not cuda:
            item.add_marker(skip_cuda)
        if "multigpu" in item.keywords and not multi:
            item.add_marker(skip_multi)


@pytest.fixture
def seeded():
    """Seed python, NumPy and torch with 0 for the test."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    return 0
