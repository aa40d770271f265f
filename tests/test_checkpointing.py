"""--checkpoint-activations: running the network in bands of rows, each recomputed in the backward
pass, gives the same loss and gradients up to float rounding, replays its dropout draws exactly,
and keeps less memory."""
import pytest
import torch

import pixelrnn
from pixelrnn.models import network
from pixelrnn.nn import native
from pixelrnn.models.network import PixelNetwork

ALL = ["pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale"]


def loss_and_grads(model, x, seed):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the dropout draws
    loss = -model.log_prob(x).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def set_head_chunk(model, logits: int) -> None:
    for m in model.modules():
        if isinstance(m, PixelNetwork):
            m.head_chunk = logits


def set_bands(model, bands: int) -> None:
    for m in model.modules():
        if isinstance(m, PixelNetwork):
            m.checkpoint_bands = bands


def assert_same_up_to_rounding(plain_loss, plain, loss, grads):
    torch.testing.assert_close(loss, plain_loss, rtol=1e-6, atol=1e-6)
    for a, b in zip(plain, grads):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("bands", [2, 3, 6])
@pytest.mark.parametrize("head_rows", [None, 1])
@pytest.mark.parametrize("extra", [{}, {"classes": 3, "mixtures": 2}])
def test_checkpointing_changes_nothing_but_memory(arch, bands, head_rows, extra):
    """Bands of any height (6 rows: 3 of 2, 2 of 3, 6 of 1), the head in pieces, skips,
    conditioning (labels; the multi-scale model's context map) and the mixture head: the loss and
    gradients of the whole network, up to float rounding. head_rows: the output head in pieces of
    that many rows (None: the default, one piece here)."""
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=3, levels=5, hidden=6, layers=3, skip=True, **extra).train()
    set_bands(model, bands)
    if head_rows:
        set_head_chunk(model, head_rows * 5 * 2 * 3 * model.config.outputs)  # rows x W x B x C x outputs
    x = torch.randint(0, 5, (2, 3, 6, 5), generator=torch.Generator().manual_seed(1))
    plain_loss, plain = loss_and_grads(model, x, seed=5)
    model.set_checkpointing(True)
    assert_same_up_to_rounding(plain_loss, plain, *loss_and_grads(model, x, seed=5))
    with torch.no_grad():  # evaluation and sampling are unaffected
        assert torch.equal(model.eval().log_prob(x), model.set_checkpointing(False).log_prob(x))


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize("kernel", [1, 5])
def test_bands_thinner_than_what_a_layer_reads_above(arch, kernel):
    """Bands of one row while the first layer reads 3 rows above (a 7×7 kernel) and a PixelCNN
    block's 5×5 conv 2 rows: a band's state reaches over several bands."""
    torch.manual_seed(0)
    opts = {"kernel": kernel} if arch == "pixelcnn" else {}
    model = pixelrnn.create_model(arch, channels=1, levels=4, hidden=4, layers=2, **opts).train()
    x = torch.randint(0, 4, (2, 1, 7, 6), generator=torch.Generator().manual_seed(1))
    plain = loss_and_grads(model, x, seed=0)
    set_bands(model, 7)
    assert_same_up_to_rounding(*plain, *loss_and_grads(model.set_checkpointing(True), x, seed=0))


@pytest.mark.parametrize("arch", ALL)
def test_recomputation_replays_the_dropout_draws(arch, monkeypatch):
    """With dropout, each band is recomputed with the draws of its forward pass: the same loss and
    gradients as the same bands kept in memory (no recomputation), exactly."""
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=3, levels=5, hidden=6, layers=3).set_dropout(0.3).train()
    set_bands(model, 3)
    model.set_checkpointing(True)
    x = torch.randint(0, 5, (2, 3, 6, 5), generator=torch.Generator().manual_seed(1))
    with monkeypatch.context() as m:  # the bands, kept in memory
        m.setattr(network, "checkpoint", lambda fn, *args, use_reentrant: fn(*args))
        kept = loss_and_grads(model, x, seed=5)
    loss, grads = loss_and_grads(model, x, seed=5)
    assert torch.equal(loss, kept[0])
    for a, b in zip(kept[1], grads):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    other_draws = loss_and_grads(model, x, seed=6)[0]
    assert not torch.equal(other_draws, loss)  # dropout is on


@pytest.mark.parametrize("mixtures", [0, 2])
def test_head_in_pieces_gives_the_same_log_probs(mixtures):
    """The head in pieces of rows (any size) gives the log-probabilities of the whole head, and the
    gradients up to the order of their sums."""
    torch.manual_seed(0)
    model = pixelrnn.create_model("row_lstm", channels=3, levels=16, hidden=6, layers=2, mixtures=mixtures)
    x = torch.randint(0, 16, (2, 3, 7, 4))
    with torch.no_grad():
        whole_values = model.value_log_probs(x)
    whole, whole_grads = loss_and_grads(model, x, seed=0)
    for rows in (1, 3):
        set_head_chunk(model, rows * 4 * 2 * 3 * model.config.outputs)
        with torch.no_grad():
            torch.testing.assert_close(model.value_log_probs(x), whole_values, rtol=1e-6, atol=1e-6)
        loss, grads = loss_and_grads(model, x, seed=0)
        torch.testing.assert_close(loss, whole, rtol=1e-6, atol=1e-5)
        for a, b in zip(grads, whole_grads):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_checkpointing_keeps_fewer_activations(arch):
    """The tensors saved for backward outside the recomputed bands are a small fraction of a plain
    step's (the image rows and the states carried between bands): counted with saved-tensor hooks."""
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=1, levels=4, hidden=8, layers=6).train()
    x = torch.randint(0, 4, (2, 1, 12, 12))

    def saved_bytes():
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model.log_prob(x).sum()
        return total[0]
    plain = saved_bytes()
    model.set_checkpointing(True)
    assert saved_bytes() < plain / 10
    with pytest.raises(ValueError, match="True or False"):
        model.set_checkpointing(1)


def test_the_number_of_bands_is_a_setting():
    model = pixelrnn.create_model("multiscale", channels=1, levels=4, hidden=4, layers=2)
    networks = [m for m in model.modules() if isinstance(m, PixelNetwork)]
    assert len(networks) == 2 and all(m.checkpoint_bands == 8 for m in networks)
    model.set_checkpointing(True, bands=3)
    assert all(m.checkpointing and m.checkpoint_bands == 3 for m in networks)
    model.set_checkpointing(False)
    assert all(not m.checkpointing and m.checkpoint_bands == 3 for m in networks)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            model.set_checkpointing(True, bands=bad)


@pytest.mark.parametrize("arch", ALL)
def test_evaluation_of_large_batches_runs_in_bands(arch, monkeypatch):
    """Without gradients, a batch whose residual stream exceeds ``band_values`` per band runs band
    by band: the same log-probabilities (the recurrent ones to the bit on the native kernel, else
    up to rounding), laid out as the whole pass's, so that their sums agree too."""
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=3, levels=5, hidden=6, layers=2, skip=True, classes=2).eval()
    x = torch.randint(0, 5, (3, 3, 8, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model.value_log_probs(x, 1)
        tops, band = [], PixelNetwork.band_log_probs

        def recording(self, e, x, context, terms, top, bottom, states):
            tops.append(top)
            return band(self, e, x, context, terms, top, bottom, states)
        monkeypatch.setattr(PixelNetwork, "band_log_probs", recording)
        monkeypatch.setattr(PixelNetwork, "band_values", 3 * 6 * 3 * 12)  # 3 rows of W x B x 2h
        banded = model.value_log_probs(x, 1)
    assert set(tops) == {0, 3, 6}  # bands of 3 rows (multi-scale: its small stage is one band)
    exact = arch in ("row_lstm", "diagonal_bilstm") and native.enabled() and native.available()
    torch.testing.assert_close(banded, whole, rtol=0 if exact else 1e-6, atol=0 if exact else 1e-6)
    assert banded.stride() == whole.stride()
