"""The scan, causality, model and activation-checkpointing tests again, on the PyTorch version of
the LSTM scan (PIXELRNN_NATIVE=0). Their own files run on the native kernel where it is available
(pixelrnn.nn.native), so both paths pass the same exactness, gradient and causality tests."""
import pytest

from test_causality import *  # noqa: F401,F403
from test_checkpointing import *  # noqa: F401,F403
from test_lstm_scan import *  # noqa: F401,F403
from test_models import *  # noqa: F401,F403


@pytest.fixture(autouse=True)
def _pytorch_scan(monkeypatch):
    monkeypatch.setenv("PIXELRNN_NATIVE", "0")
