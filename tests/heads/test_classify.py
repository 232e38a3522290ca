"""The classification network: masks all the way to the pooling, so a series' output does not
depend on the longer series it is batched with, for every sequence backbone."""

from __future__ import annotations

import pytest
import torch

from tsk import backbones
from tsk.datasets.sequences import pad_collate
from tsk.heads.classify import (
    POOLINGS,
    ClassifyNet,
    GridAsSequence,
    GridTokens,
    Pooling,
    normalize_series,
    patch_count,
    reverse_within_lengths,
    run_masked,
    valid_mask,
)

SMALL = {"d_model": 8, "n_layers": 2, "dropout": 0.0}


def _net(name: str, pooling: str = "mean", bidirectional: bool = False, patch_len: int | None = None,
         **config) -> ClassifyNet:
    torch.manual_seed(0)
    options = {**SMALL, **config}
    if "max_length" in backbones.get_spec(name).config_fields:
        options.setdefault("max_length", 40)
    if "period" in backbones.get_spec(name).config_fields:
        options.setdefault("period", 6)
    backward = backbones.create(name, **options) if bidirectional else None
    return ClassifyNet(backbones.create(name, **options), n_in=2, n_classes=3, d_model=8,
                       pooling=pooling, backward=backward, patch_len=patch_len).eval()


def _series(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(length, 2, generator=gen) * 3 + 1 for length in lengths]


@pytest.mark.parametrize("name", backbones.available("sequence"))
def test_a_series_gives_the_same_logits_alone_and_batched_with_longer_ones(name):
    net = _net(name, bidirectional=name in ("s4d", "lstm"))
    series = _series([13, 40, 27, 13, 1])
    with torch.no_grad():
        batched = net(**_inputs(pad_collate([{"inputs": s} for s in series])))
        alone = torch.cat([net(s[None]) for s in series])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "patch_len"), [("s4d", 5), ("tpgn", 4), ("mamba", 8)])
def test_patch_tokens_keep_a_series_output_independent_of_its_batch(name, patch_len):
    net = _net(name, patch_len=patch_len, bidirectional=name == "mamba")
    series = _series([13, 40, 27, 3, 1, 16])
    with torch.no_grad():
        batched = net(**_inputs(pad_collate([{"inputs": s} for s in series])))
        alone = torch.cat([net(s[None]) for s in series])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("length", "patch_len", "stride", "count"),
                         [(16, 16, 8, 1), (17, 16, 8, 2), (24, 16, 8, 2), (25, 16, 8, 3), (3, 8, 4, 1)])
def test_patches_cover_every_step(length, patch_len, stride, count):
    assert patch_count(length, patch_len, stride) == count
    assert patch_count(torch.tensor([length]), patch_len, stride).item() == count
    assert (count - 1) * stride + patch_len >= length  # the last patch reaches the last step


@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_pooling_ignores_the_padding(pooling):
    net = _net("s4d", pooling=pooling)
    series = _series([9, 30])
    batch = pad_collate([{"inputs": s} for s in series])
    with torch.no_grad():
        clean = net(**_inputs(batch))
        batch["inputs"][0, 9:] = 1e3  # garbage where series 0 has no steps
        dirty = net(**_inputs(batch))
        alone = net(series[0][None])
    torch.testing.assert_close(dirty[0], alone[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(clean, dirty, rtol=1e-4, atol=1e-5)


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"inputs": batch["inputs"], "lengths": batch["lengths"]}


def test_a_non_causal_backbone_runs_each_length_on_its_own():
    """A bidirectional S4 reads the future: run on the padded batch in one pass, the padding
    would reach the short series; `run_masked` must not let it."""
    torch.manual_seed(0)
    backbone = backbones.create("s4", **SMALL, bidirectional=True).eval()
    assert not backbones.is_causal(backbone)
    x = torch.randn(2, 20, 8)
    x[0, 11:] = 0.0
    lengths = torch.tensor([11, 20])
    with torch.no_grad():
        masked = run_masked(backbone, x, lengths)
        one_pass = backbone(x)
        alone = backbone(x[:1, :11])
    torch.testing.assert_close(masked[0, :11], alone[0])
    torch.testing.assert_close(masked[1], one_pass[1])
    assert (one_pass[0, :11] - alone[0]).abs().max() > 1e-3  # the check above can fail


def test_reverse_within_lengths_keeps_padding_in_place():
    x = torch.arange(12.0).view(2, 6, 1)
    out = reverse_within_lengths(x, torch.tensor([4, 6]))
    assert out[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5]
    assert out[1, :, 0].tolist() == [11, 10, 9, 8, 7, 6]


def test_normalization_is_per_series_and_channel_over_valid_steps():
    x = torch.tensor([[[1.0, 10.0], [3.0, 10.0], [0.0, 0.0]]])  # 2 valid steps, 1 padded
    mask = valid_mask(torch.tensor([2]), 1, 3, x.device)
    out = normalize_series(x, mask)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([-1.0, 1.0, 0.0]))
    torch.testing.assert_close(out[0, :, 1], torch.zeros(3))  # constant channel: zeros, not NaN


def test_normalized_inputs_make_the_net_blind_to_scale_and_offset():
    net = _net("lstm")
    x = _series([25])[0][None]
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x * 7.5 - 3.0), rtol=1e-4, atol=1e-5)


def test_last_pooling_takes_each_series_last_valid_step():
    features = torch.arange(10.0).view(2, 5, 1)
    mask = valid_mask(torch.tensor([2, 5]), 2, 5, features.device)
    assert Pooling("last", 1)(features, mask)[:, 0].tolist() == [1.0, 9.0]
    assert Pooling("mean", 1)(features, mask)[:, 0].tolist() == [0.5, 7.0]


def test_loss_uses_class_weights_and_metrics_report_accuracy():
    net = _net("s4d")
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    batch = {"targets": torch.tensor([0, 2])}
    plain = net.loss(logits, batch)
    net.class_weights.copy_(torch.tensor([1.0, 1.0, 5.0]))
    weighted = net.loss(logits, batch)
    assert weighted > plain  # the misclassified class-2 sample counts five times
    assert net.metrics(logits, batch)["accuracy"].item() == 0.5


def test_bad_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling must be one of"):
        Pooling("max", 4)


@pytest.mark.parametrize("patch_len", [None, 4])
def test_grid_tokens_tell_the_channels_apart(patch_len):
    """Two channels holding the same series get different tokens (each channel's own scale
    and shift of the shared embedding), and differ by exactly those."""
    torch.manual_seed(0)
    frontend = GridTokens(8, 3, patch_len)
    with torch.no_grad():
        frontend.channels.scale[1] = torch.linspace(0.5, 2.0, 8)
    series = torch.randn(2, 20, 1).expand(2, 20, 3)
    tokens, _ = frontend(series, None)
    per_channel = tokens.view(2, tokens.shape[1], 3, 8)
    assert (per_channel[:, :, 0] - per_channel[:, :, 1]).abs().min() > 0
    shared = (frontend.embed(series[..., :1], None)[0] if patch_len
              else frontend.embed(series[..., :1]))
    for c in range(3):
        torch.testing.assert_close(per_channel[:, :, c], shared * frontend.channels.scale[c]
                                   + frontend.channels.shift[c])


@pytest.mark.parametrize("patch_len", [None, 4])
def test_a_grid_backbone_reads_the_channels_as_variates_independently_of_the_batch(patch_len):
    """Chimera through GridTokens / GridAsSequence: padding never reaches a series' logits, and
    every channel reaches them."""
    torch.manual_seed(0)
    options = {**SMALL, "d_state": 2}
    net = ClassifyNet(GridAsSequence(backbones.create("chimera", **options), 8), n_in=2,
                      n_classes=3, d_model=8, frontend=GridTokens(8, 2, patch_len),
                      backward=GridAsSequence(backbones.create("chimera", **options), 8)).eval()
    series = _series([13, 40, 27, 5, 1])
    with torch.no_grad():
        batched = net(**_inputs(pad_collate([{"inputs": s} for s in series])))
        alone = torch.cat([net(s[None]) for s in series])
        bumped = series[1].clone()
        bumped[:, 1] += torch.randn(40)
        moved = net(bumped[None]) - alone[1:2]
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)
    assert moved.abs().max() > 1e-4
