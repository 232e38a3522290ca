"""The enhancement network: the bounded mask, SI-SNR over valid samples, the STFT round trip and
that a clip's loss ignores what it is batched with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tsk import backbones
from tsk.heads.enhance import EnhanceNet, bounded, masked_si_snr
from tsk.metrics import si_snr


def test_bounded_mask_keeps_the_phase_and_stays_below_one():
    raw = torch.complex(torch.randn(500, dtype=torch.float64) * 2, torch.randn(500, dtype=torch.float64) * 2)
    mask = bounded(raw)
    assert mask.abs().max() < 1.0
    torch.testing.assert_close(mask.angle(), raw.angle(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mask.abs(), torch.tanh(raw.abs()))


def test_masked_si_snr_scores_each_clip_over_its_own_samples():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((2, 300))
    estimate = clean + 0.3 * rng.standard_normal((2, 300))
    lengths = torch.tensor([300, 170])
    padded_clean, padded_estimate = clean.copy(), estimate.copy()
    padded_clean[1, 170:], padded_estimate[1, 170:] = 0.0, 5.0  # junk past the end
    values = masked_si_snr(torch.tensor(padded_clean), torch.tensor(padded_estimate), lengths)
    assert values[0].item() == pytest.approx(si_snr(clean[0], estimate[0]), rel=1e-6)
    assert values[1].item() == pytest.approx(si_snr(clean[1, :170], estimate[1, :170]), rel=1e-6)


def make_net(bidirectional: bool = False) -> EnhanceNet:
    torch.manual_seed(0)
    make = lambda: backbones.create("s4d", d_model=8, n_layers=1, dropout=0.0)  # noqa: E731
    return EnhanceNet(make(), 8, n_fft=64, hop=16, backward=make() if bidirectional else None).eval()


def test_a_mask_of_one_gives_back_the_input():
    net = make_net()
    wave = torch.randn(2, 333)
    spectrum = net.stft(wave)
    rebuilt = torch.istft(spectrum, 64, 16, window=net.window, center=True, length=333)
    torch.testing.assert_close(rebuilt, wave, atol=1e-5, rtol=1e-5)
    out = net(wave)
    assert out["waveform"].shape == (2, 333) and out["mask"].abs().max() <= 1
    assert out["frames"].tolist() == [333 // 16 + 1] * 2


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_clips_loss_and_estimate_do_not_depend_on_longer_batch_mates(bidirectional):
    net = make_net(bidirectional)
    short, longer = torch.randn(200), torch.randn(480)
    clean_short, clean_longer = torch.randn(200), torch.randn(480)
    alone = net(short[None], torch.tensor([200]))
    batch = {"inputs": torch.nn.utils.rnn.pad_sequence([short, longer], batch_first=True),
             "lengths": torch.tensor([200, 480]),
             "targets": torch.nn.utils.rnn.pad_sequence([clean_short, clean_longer], batch_first=True)}
    together = net(batch["inputs"], batch["lengths"])
    frames = 200 // 16 + 1
    torch.testing.assert_close(together["mask"][0, :, :frames], alone["mask"][0],
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together["waveform"][0, :200], alone["waveform"][0],
                               atol=1e-5, rtol=1e-5)
    assert together["waveform"][0, 200:].abs().max() == 0
    loss = net.loss(together, batch)
    assert torch.isfinite(loss)
    assert "si_snr" in net.metrics(together, batch)
