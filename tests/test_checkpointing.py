"""--checkpoint-activations: recomputing every residual block in the backward pass gives the same
loss and the same gradients (dropout draws included), and keeps less memory."""
import pytest
import torch

import pixelrnn
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


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("head_rows", [None, 1, 2])
def test_checkpointing_changes_nothing_but_memory(arch, dropout, head_rows):
    """head_rows: the output head in pieces of that many rows (None: the default, one piece here)."""
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=3, levels=5, hidden=6, layers=3, skip=True)
    model.set_dropout(dropout).train()
    if head_rows:
        set_head_chunk(model, head_rows * 5 * 2 * 3 * 5)  # rows x W x B x C x levels
    x = torch.randint(0, 5, (2, 3, 6, 5), generator=torch.Generator().manual_seed(1))
    plain_loss, plain = loss_and_grads(model, x, seed=5)
    model.set_checkpointing(True)
    ckpt_loss, ckpt = loss_and_grads(model, x, seed=5)
    assert torch.equal(plain_loss, ckpt_loss)
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():  # evaluation and sampling are unaffected
        assert torch.equal(model.eval().log_prob(x), model.set_checkpointing(False).log_prob(x))


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


def test_checkpointing_keeps_fewer_activations():
    """The tensors saved for backward shrink: counted with saved-tensor hooks."""
    torch.manual_seed(0)
    model = pixelrnn.create_model("row_lstm", channels=1, levels=4, hidden=8, layers=6).train()
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
    assert saved_bytes() < plain / 2
    with pytest.raises(ValueError, match="True or False"):
        model.set_checkpointing(1)
