import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
