"""--checkpoint-activations: recomputing every residual block in the backward pass gives the same
loss and the same gradients (dropout draws included), and keeps less memory."""
import pytest
import torch

import pixelrnn

ALL = ["pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale"]


def loss_and_grads(model, x, seed):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the dropout draws
    loss = -model.log_prob(x).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_checkpointing_changes_nothing_but_memory(arch, dropout):
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=3, levels=5, hidden=6, layers=3, skip=True)
    model.set_dropout(dropout).train()
    x = torch.randint(0, 5, (2, 3, 6, 5), generator=torch.Generator().manual_seed(1))
    plain_loss, plain = loss_and_grads(model, x, seed=5)
    model.set_checkpointing(True)
    ckpt_loss, ckpt = loss_and_grads(model, x, seed=5)
    assert torch.equal(plain_loss, ckpt_loss)
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():  # evaluation and sampling are unaffected
        assert torch.equal(model.eval().log_prob(x), model.set_checkpointing(False).log_prob(x))


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
