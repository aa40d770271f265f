import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Thousands of tiny ops: one thread avoids OpenMP wake-up costs without changing results."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def completion_masks():
    """(H, W) -> named `known` masks for completion tests: bottom half unknown, a hole, scattered."""
    def masks(H, W):
        bottom = torch.ones(H, W, dtype=torch.bool)
        bottom[H // 2:] = False
        hole = torch.ones(H, W, dtype=torch.bool)
        hole[1:H - 1, 1:W - 1] = False
        scattered = torch.rand(H, W, generator=torch.Generator().manual_seed(3)) < 0.5
        return {"bottom": bottom, "hole": hole, "scattered": scattered}
    return masks


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not `in item.keywords`: a parameter id "gpu" is a keyword too
            item.add_marker(skip)
