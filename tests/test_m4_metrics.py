"""The M4 competition's metrics (Mcompetitions/M4-methods, "Benchmarks and Evaluation.R"): sMAPE,
MASE and OWA on cases worked out by hand, the seasonality test and classical decomposition
behind Naive2, and Naive2 on the real Hourly and Weekly data against the published figures."""

from __future__ import annotations

import numpy as np
import pytest

from tsk.datasets import load_m4
from tsk.metrics import mase, naive2, owa, seasonal_indices, seasonality_test, smape


def test_smape_by_hand():
    # series 1: |100-110| / (100+110), |200-180| / (200+180); series 2: 0, |50-100| / (50+100)
    target = [[100.0, 200.0], [50.0, 50.0]]
    forecast = [[110.0, 180.0], [50.0, 100.0]]
    expected = (200 * 10 / 210 + 200 * 20 / 380 + 0 + 200 * 50 / 150) / 4  # 21.6792...
    assert smape(target, forecast) == pytest.approx(expected)
    assert smape(target[0], forecast[0]) == pytest.approx((200 * 10 / 210 + 200 * 20 / 380) / 2)
    assert smape([0.0, 10.0], [0.0, 10.0]) == 0.0  # 0/0 counts as no error
    assert smape([1.0], [-1.0]) == pytest.approx(200.0)  # the largest error it can give
    with pytest.raises(ValueError, match="equal"):
        smape(target, forecast[0])


def test_mase_by_hand():
    # season 1: insample steps 1, 2, 3 -> scale 2; errors 1 and 3 -> (1/2 + 3/2) / 2 = 1
    assert mase(np.array([1.0, 2.0, 4.0, 7.0]), [8.0, 10.0], [7.0, 7.0]) == pytest.approx(1.0)
    # season 2: series A's lag-2 steps |14-10|, |26-20|, |12-14| -> scale 4, errors 8 and 4;
    # series B's |6-5|, |8-5|, |7-6| -> scale 5/3, errors 0 and 3: mean of 2, 1, 0, 1.8
    insample = [np.array([10.0, 20.0, 14.0, 26.0, 12.0]), np.array([5.0, 5.0, 6.0, 8.0, 7.0])]
    target = [[30.0, 10.0], [9.0, 9.0]]
    forecast = [[22.0, 14.0], [9.0, 6.0]]
    assert mase(insample, target, forecast, season=2) == pytest.approx((2 + 1 + 0 + 1.8) / 4)
    # season 1 on the same data: A's steps 10, 6, 12, 14 -> 10.5; B's 0, 1, 2, 1 -> 1
    assert mase(insample, target, forecast) == pytest.approx((8 / 10.5 + 4 / 10.5 + 0 + 3) / 4)
    with pytest.raises(ValueError, match="constant"):
        mase([np.ones(10)], [[1.0]], [[2.0]])
    with pytest.raises(ValueError, match="2 series, target 1"):
        mase(insample, target[:1], forecast[:1])


def test_owa_is_the_mean_of_the_two_ratios():
    assert owa(10.0, 1.0, 20.0, 2.0) == pytest.approx(0.5)
    assert owa(30.0, 1.0, 20.0, 2.0) == pytest.approx((1.5 + 0.5) / 2)
    assert owa(18.383, 2.395, 18.383, 2.395) == pytest.approx(1.0)


def test_seasonal_indices_of_classical_decomposition():
    # season 2: the 2x2 moving average (1/4, 1/2, 1/4) of 2, 4, 2, ... is 3 inside; the ratios
    # 4/3, 2/3, 4/3, 2/3 at positions 1..4 -> indices 2/3 (even positions), 4/3 (odd)
    np.testing.assert_allclose(seasonal_indices([2, 4, 2, 4, 2, 4], 2), [2 / 3, 4 / 3])
    # season 3: the 3-term average of 1, 2, 3, ... is 2 inside -> ratios 1/2, 1, 3/2
    np.testing.assert_allclose(seasonal_indices([1, 2, 3] * 3, 3), [0.5, 1.0, 1.5])
    with pytest.raises(ValueError, match="at least 2"):
        seasonal_indices([1, 2, 3], 2)


def seasonal_pattern(season: int = 24) -> np.ndarray:
    return 1 + 0.5 * np.sin(2 * np.pi * np.arange(season) / season)


def test_seasonality_test():
    pattern = seasonal_pattern()
    x = 100 * pattern[np.arange(24 * 14) % 24]
    assert seasonality_test(x, 24)
    assert not seasonality_test(x, 1)  # season 1: nothing to test
    assert not seasonality_test(x[:60], 24)  # fewer than 3 seasons
    # R's acf stops at lag floor(10 log10 n): 23 at n = 251, 24 from n = 252 on
    assert not seasonality_test(x[:251], 24)
    assert seasonality_test(x[:252], 24)
    noise = 50 + np.random.default_rng(0).standard_normal(240)
    assert not seasonality_test(noise, 24)
    assert not seasonality_test(np.full(100, 3.0), 4)  # constant: no autocorrelation


def test_naive2_seasonal_and_not():
    """On a purely multiplicative seasonal series the seasonal indices are the pattern itself,
    so Naive2 continues the series exactly; without seasonality it repeats the last value."""
    pattern = seasonal_pattern()
    n = 24 * 14 + 5  # ends mid-season
    x = 100 * pattern[np.arange(n) % 24]
    forecast = naive2(x, 48, 24)
    np.testing.assert_allclose(forecast, 100 * pattern[(n + np.arange(48)) % 24])
    assert forecast.std() > 10  # a seasonal forecast, not a flat one
    noise = 50 + np.random.default_rng(0).standard_normal(240)
    np.testing.assert_array_equal(naive2(noise, 6, 24), np.full(6, noise[-1]))
    np.testing.assert_array_equal(naive2(x, 3, 1), np.full(3, x[-1]))  # season 1: naive
    with pytest.raises(ValueError, match="1-D"):
        naive2(np.ones((2, 5)), 3, 1)


def test_owa_of_naive2_against_itself_is_1():
    rng = np.random.default_rng(1)
    pattern = seasonal_pattern()
    insample = [100 * pattern[np.arange(n) % 24] * (1 + 0.05 * rng.standard_normal(n))
                for n in (300, 320, 340)]
    target = np.stack([100 * pattern[(len(x) + np.arange(48)) % 24] for x in insample])
    forecast = np.stack([naive2(x, 48, 24) for x in insample])
    s, m = smape(target, forecast), mase(insample, target, forecast, 24)
    assert s > 0 and m > 0
    assert owa(s, m, s, m) == 1.0


@pytest.fixture(scope="module")
def m4_root(data_dir):
    if not (data_dir / "forecasting" / "m4").is_dir():
        pytest.skip(f"M4 files not found under {data_dir / 'forecasting' / 'm4'}")
    return data_dir


@pytest.mark.parametrize(("group", "published_smape", "published_mase"), [
    ("Hourly", 18.383, 2.395),
    ("Weekly", 9.161, 2.777),
])
def test_naive2_reproduces_the_published_m4_scores(m4_root, group, published_smape, published_mase):
    """Naive2's sMAPE and MASE in the M4 results (Makridakis et al. 2020, IJF), to their three
    decimals; Hourly has a daily season (413 of its 414 series pass the test), Weekly none
    (m = 1: Naive2 is the naive forecast)."""
    data = load_m4(group, m4_root)
    forecast = np.stack([naive2(x, data.horizon, data.seasonality) for x in data.insample])
    assert smape(data.outsample, forecast) == pytest.approx(published_smape, abs=5e-4)
    assert mase(data.insample, data.outsample, forecast, data.seasonality) == pytest.approx(
        published_mase, abs=5e-4)
    seasonal = sum(seasonality_test(x, data.seasonality) for x in data.insample)
    assert seasonal == (413 if group == "Hourly" else 0)
