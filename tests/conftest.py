import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
