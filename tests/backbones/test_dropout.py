"""The fast CPU dropout every backbone and head uses: F.dropout's contract."""

import pytest
import torch
import torch.nn.functional as F

from tsk.backbones.common import Dropout, dropout


def test_drops_the_asked_share_and_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.full((400, 1000), 3.0)
    y = dropout(x, 0.1)
    dropped = (y == 0).float().mean().item()
    # 400k independent draws: the share dropped is 0.1 within ~5 standard deviations (0.0024)
    assert abs(dropped - 0.1) < 0.0024
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 3.0 * 32768 / (32768 - 3277)))
    assert abs(y.mean().item() - 3.0) < 0.03


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_each_element_is_dropped_independently(p):
    """No structure in the mask: the four elements one 64-bit draw serves are dropped as often
    as any, and neighbours are not correlated."""
    torch.manual_seed(1)
    mask = (dropout(torch.ones(200_000 * 4), p) == 0).float().view(-1, 4)
    assert torch.allclose(mask.mean(0), torch.full((4,), p), atol=0.006)
    joint = (mask[:, 0] * mask[:, 3]).mean().item()
    assert abs(joint - p * p) < 0.006


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(2)
    x = torch.randn(7, 13, requires_grad=True)
    y = dropout(x, 0.25)
    (grad,) = torch.autograd.grad(y.sum(), x)
    scale = 32768 / (32768 - 8192)
    assert torch.equal(grad, (y != 0).float() * scale)


def test_evaluation_zero_one_and_seeds():
    x = torch.randn(5, 6)
    assert torch.equal(dropout(x, 0.5, training=False), x)
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), F.dropout(x, 1.0))
    torch.manual_seed(3)
    first = dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.5), first)  # the global seed decides the mask
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dropout(x, 1.5)
    layer = Dropout(0.5).eval()
    assert torch.equal(layer(x), x) and "p=0.5" in repr(layer)
