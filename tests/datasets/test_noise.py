"""Noise for enhancement: colours by their spectral slope, babble, mixtures at a given SNR."""

from __future__ import annotations

import numpy as np
import pytest

from tsk.datasets.noise import babble, coloured_noise, mix


@pytest.mark.parametrize("colour, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_has_its_spectral_slope(colour, slope):
    noise = coloured_noise(2**16, colour, np.random.default_rng(0))
    assert noise.std() == pytest.approx(1.0, rel=1e-4)
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(len(noise))
    band = (frequencies > 1e-3) & (frequencies < 0.4)
    fitted = np.polyfit(np.log(frequencies[band]), np.log(power[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.1)
    with pytest.raises(ValueError, match="colour must be one of"):
        coloured_noise(10, "blue", np.random.default_rng(0))


def test_babble_sums_the_talkers_it_draws():
    rng = np.random.default_rng(0)
    one = np.sin(np.arange(300) / 5.0)
    noise = babble([one], 1000, 1, rng)  # one talker: the clip itself, looped, standardized
    assert len(noise) == 1000 and noise.std() == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(noise[:700], noise[300:], atol=1e-6)  # the clip, repeated
    standardized = (one - one.mean()) / one.std()
    start = int(np.argmin([np.abs(np.roll(standardized, -k)[:300] - noise[:300]).max()
                           for k in range(300)]))
    assert np.corrcoef(noise[:300], np.roll(standardized, -start))[0, 1] > 0.99999
    several = babble([np.random.default_rng(i).standard_normal(400) for i in range(6)], 900, 4, rng)
    assert several.std() == pytest.approx(1.0, rel=1e-4)


def test_mix_puts_the_noise_at_the_asked_snr():
    rng = np.random.default_rng(0)
    clean, noise = rng.standard_normal(5000), 3 * rng.standard_normal(5000)
    for snr in (-5.0, 0.0, 10.0):
        noisy = mix(clean, noise, snr)
        residual = noisy - clean
        assert 10 * np.log10(np.mean(clean**2) / np.mean(residual**2)) == pytest.approx(snr, abs=1e-4)
    with pytest.raises(ValueError, match="noise has 10 samples"):
        mix(clean, noise[:10], 0.0)
