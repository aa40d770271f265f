"""pixelrnn: PixelRNN (Row LSTM, Diagonal BiLSTM) and PixelCNN with exact likelihoods.

    import pixelrnn
    model = pixelrnn.create_model("row_lstm", channels=1, levels=2, hidden=16, layers=7)
    logp = model.log_prob(x)            # (B,) exact log-likelihood in nats
    pixelrnn.save(model, "m.safetensors")
    model = pixelrnn.load("m.safetensors")

    model = pixelrnn.create_model("row_lstm", channels=1, levels=2, classes=10)  # given a label
    model.log_prob(x, y); model.classify(x); model.sample(16, 28, 28, y=7)
    feats = pixelrnn.features(model, x)  # (B, D) learned features

    model = pixelrnn.pretrained("mnist")  # a model shipped with the package (pixelrnn.pretrained_names())
"""
from .anomaly import anomaly_scores
from .checkpoint import load, save
from .errors import CheckpointError
from .models import ARCHITECTURES, ModelConfig, PixelModel, create_model
from .pretrained import pretrained, pretrained_names
from .understanding import features

__version__ = "0.1.0"

__all__ = ["ARCHITECTURES", "anomaly_scores", "CheckpointError", "ModelConfig", "PixelModel", "create_model",
           "features", "load", "pretrained", "pretrained_names", "save", "__version__"]
