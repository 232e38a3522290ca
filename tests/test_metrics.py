"""Speech metrics: SI-SNR by its definition and against torchmetrics; PESQ and STOI on the real
reference pair, whose published PESQ scores the reference implementation reproduces. Probabilistic
forecast metrics (pinball loss, weighted quantile loss, CRPS) by hand and against numerical
integration."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from scipy import integrate, stats
from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

from tsk.metrics import (
    crps_normal,
    crps_quantiles,
    crps_student_t,
    pesq,
    pinball_loss,
    si_snr,
    stoi,
    video_scores,
    weighted_quantile_loss,
)


def test_si_snr_is_scale_invariant_and_matches_torchmetrics():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((3, 4000))
    noise = rng.standard_normal((3, 4000))
    noisy = clean + 0.1 * noise * np.array([[1.0], [2.0], [4.0]])
    values = si_snr(clean, noisy)
    assert values.shape == (3,) and values[0] > values[1] > values[2]
    assert si_snr(clean[0], noisy[0]) == pytest.approx(values[0])
    assert si_snr(clean[0], 5 * noisy[0] + 0.3) == pytest.approx(values[0])  # scale, offset
    assert si_snr(clean[0], noisy[0]) == pytest.approx(20.0, abs=0.3)  # noise 10x below: 20 dB
    expected = scale_invariant_signal_noise_ratio(torch.tensor(noisy), torch.tensor(clean))
    np.testing.assert_allclose(values, expected.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        si_snr(clean[0], noisy[0, :100])


@pytest.fixture(scope="module")
def pesq_pair(data_dir):
    folder = data_dir / "speech" / "pesq_sample"
    clean, rate = soundfile.read(folder / "speech.wav")
    noisy, _ = soundfile.read(folder / "speech_bab_0dB.wav")
    return clean, noisy, rate


def test_pesq_reproduces_the_published_scores_of_the_reference_pair(pesq_pair):
    clean, noisy, rate = pesq_pair
    assert rate == 16000
    assert pesq(clean, noisy, rate, "wb") == pytest.approx(1.0832337141036987, abs=1e-6)
    assert pesq(clean, noisy, rate, "nb") == pytest.approx(1.6072081327438354, abs=1e-6)
    assert pesq(clean, clean, rate, "wb") > 4.5
    with pytest.raises(ValueError, match="needs audio at 16000 Hz, got 8000: resample"):
        pesq(clean[::2], noisy[::2], 8000, "wb")


def test_stoi_orders_clean_above_noisy(pesq_pair):
    clean, noisy, rate = pesq_pair
    assert stoi(clean, clean, rate) == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < stoi(clean, noisy, rate) < 0.8  # babble at 0 dB
    assert stoi(clean, noisy, rate, extended=True) < stoi(clean, noisy, rate)


def test_video_scores_per_frame():
    """MSE sums a frame's squared errors over its pixels; PSNR is 10 log10(1 / mean squared
    error); identical frames have SSIM 1; the curves run over the predicted steps."""
    rng = np.random.default_rng(0)
    target = rng.uniform(0.2, 0.8, (3, 4, 1, 16, 16)).astype(np.float32)
    prediction = target.copy()
    prediction[:, 2:] += 0.1  # the last two steps off by 0.1 at every pixel
    scores = video_scores(target, prediction)
    np.testing.assert_allclose(scores["mse_per_step"], [0, 0, 2.56, 2.56], atol=1e-4)
    np.testing.assert_allclose(scores["psnr_per_step"][2:], [20.0, 20.0], atol=1e-3)
    np.testing.assert_allclose(scores["ssim_per_step"][:2], [1.0, 1.0], atol=1e-6)
    assert scores["ssim_per_step"][2] < 1.0
    assert scores["mse"] == pytest.approx(np.mean(scores["mse_per_step"]))
    with pytest.raises(ValueError, match=r"equal \[n, T, C, H, W\]"):
        video_scores(target[0], prediction[0])


# ---- probabilistic forecasts ------------------------------------------------------------------
def test_pinball_and_weighted_quantile_loss_by_hand():
    # q = 0.9: y = 1 above f = 0 costs 0.9 x 1; y = 2 below f = 3 costs 0.1 x 1
    assert pinball_loss([1.0, 2.0], [0.0, 3.0], 0.9) == pytest.approx(0.5)
    assert pinball_loss([1.0, 2.0], [0.0, 3.0], 0.5) == pytest.approx(0.5)  # half the MAE
    target = np.array([1.0, -3.0])
    forecasts = np.array([[0.0, 2.0], [-4.0, -1.0]])  # quantiles 0.1 and 0.9 of each value
    # q = 0.1: errors 1, 1 -> 0.1 + 0.1; q = 0.9: errors -1, -2 -> 0.1 + 0.2; sum |y| = 4
    expected = np.mean([2 * 0.2 / 4, 2 * 0.3 / 4])
    assert weighted_quantile_loss(target, forecasts, [0.1, 0.9]) == pytest.approx(expected)
    assert crps_quantiles(target, forecasts, [0.1, 0.9]) == pytest.approx(2 * 0.5 / 4)
    assert crps_quantiles(target, forecasts[:, :1], [0.5]) == pytest.approx(np.mean([1, 1]))  # MAE
    with pytest.warns(UserWarning, match="every target value is 0"):
        assert np.isnan(weighted_quantile_loss([0.0], [[1.0]], [0.5]))
    with pytest.raises(ValueError, match="one value per target value and quantile"):
        weighted_quantile_loss(target, forecasts, [0.5])
    with pytest.raises(ValueError, match="leave them out first"):
        crps_quantiles([np.nan], [[0.0]], [0.5])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        pinball_loss([1.0], [1.0], 1.5)


def test_crps_in_closed_form():
    # N(0, 1) at 0: 2 phi(0) - 1 / sqrt(pi) = sqrt(2 / pi) - 1 / sqrt(pi)
    assert crps_normal(0.0, 0.0, 1.0) == pytest.approx(0.2336949772551091, rel=1e-12)
    assert crps_normal([3.0], [1.0], [2.0]) == pytest.approx(2 * crps_normal(1.0, 0.0, 1.0))

    def integrated(distribution, y):  # CRPS = int (F(x) - 1[x >= y])^2 dx
        def gap(x):
            return (distribution.cdf(x) - (x >= y)) ** 2
        return integrate.quad(gap, -np.inf, y)[0] + integrate.quad(gap, y, np.inf)[0]

    for y, loc, scale, df in [(0.3, 0.0, 1.0, 3.0), (2.5, 1.0, 2.0, 2.2), (-4.0, 0.0, 0.5, 10.0)]:
        assert crps_student_t(y, loc, scale, df) == pytest.approx(
            integrated(stats.t(df, loc, scale), y), rel=1e-7)
        assert crps_normal(y, loc, scale) == pytest.approx(integrated(stats.norm(loc, scale), y),
                                                           rel=1e-7)
    # many degrees of freedom: the normal's
    assert crps_student_t(0.7, 0.0, 1.0, 1e6) == pytest.approx(crps_normal(0.7, 0.0, 1.0), rel=1e-5)
    # a fine quantile grid approximates the closed form
    grid = np.linspace(0.005, 0.995, 199)
    assert crps_quantiles([0.7], stats.norm.ppf(grid)[None], grid) == pytest.approx(
        crps_normal(0.7, 0.0, 1.0), rel=0.01)
    with pytest.raises(ValueError, match="df > 1"):
        crps_student_t(0.0, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        crps_normal(0.0, 0.0, 0.0)
