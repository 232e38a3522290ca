"""Speech front ends: the filter bank against a direct convolution, masks (a clip's frames do not
depend on its batch-mates), the continuous-time rate change, and torchaudio's features."""

from __future__ import annotations

import pytest
import torch
import torchaudio

from tsk.heads.speech import RawFrontend, SpectralFrontend, frame_count
from tsk.kernels.fftconv.reference import fftconv_reference


def padded(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(c) for c in clips])
    return torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)[..., None], lengths


def test_raw_filter_bank_is_the_ssm_convolution_then_a_masked_frame_mean():
    torch.manual_seed(0)
    front = RawFrontend(d_model=5, hop=4, n_filters=3, d_state=8).double()
    x = torch.randn(2, 19, 1, dtype=torch.float64)
    lengths = torch.tensor([19, 10])
    tokens, counts = front(x * (torch.arange(19)[None, :, None] < lengths[:, None, None]), lengths)
    assert counts.tolist() == [5, 3] and tokens.shape == (2, 5, 5)
    kernel = front.filters(19).double()
    for b, n in enumerate(lengths.tolist()):
        u = x[b, :n, 0].expand(3, n)[None]  # the clip, once per filter
        y = torch.nn.functional.gelu(fftconv_reference(u, kernel[:, :n], front.D))[0]  # [3, n]
        frames = [y[:, i:i + 4].mean(1) for i in range(0, n, 4)]  # the last frame is partial
        expected = front.project(torch.stack(frames))
        torch.testing.assert_close(tokens[b, :len(frames)], expected)


@pytest.mark.parametrize("make", [
    lambda: RawFrontend(d_model=6, hop=8, n_filters=4, d_state=8),
    lambda: SpectralFrontend("mel", 8000, 6, window=64, hop=16, n_mels=10),
    lambda: SpectralFrontend("mfcc", 8000, 6, window=64, hop=16, n_mels=12, n_mfcc=6),
])
def test_a_clips_frames_do_not_change_with_longer_batch_mates(make):
    torch.manual_seed(0)
    front = make().eval()
    short, longer = torch.randn(150), torch.randn(400)
    alone, count = front(short[None, :, None], torch.tensor([150]))
    x, lengths = padded([short, longer])
    batched, counts = front(x, lengths)
    assert counts[0] == count[0]
    torch.testing.assert_close(batched[0, :count[0]], alone[0], atol=1e-5, rtol=1e-5)


def test_raw_front_end_reads_another_rate_through_its_continuous_time_step():
    """The same slow signal sampled at 8 kHz and at 16 kHz: with the step rescaled the frames
    agree closely; read as if it were 8 kHz audio they do not."""
    torch.manual_seed(0)
    front = RawFrontend(d_model=8, hop=80, n_filters=16, d_state=16).double().eval()

    def signal(rate: int) -> torch.Tensor:
        t = torch.arange(int(0.5 * rate), dtype=torch.float64) / rate
        return (torch.sin(2 * torch.pi * 60 * t) + 0.5 * torch.sin(2 * torch.pi * 130 * t + 1.0))

    at8, _ = front(signal(8000)[None, :, None])
    adapted, count = front(signal(16000)[None, :, None], step_scale=0.5)
    ignored, _ = front(signal(16000)[None, :, None])
    assert count.tolist() == [at8.shape[1]]  # frames keep their duration
    error = (adapted - at8).norm() / at8.norm()
    assert error < 0.02
    assert (ignored[:, :at8.shape[1]] - at8).norm() / at8.norm() > 10 * error
    with pytest.raises(ValueError, match="whole number"):
        front(signal(16000)[None, :, None], step_scale=8000 / 11025)


def test_spectral_front_end_is_torchaudios_features_standardized():
    torch.manual_seed(0)
    front = SpectralFrontend("mel", 8000, 4, window=200, hop=80, n_mels=20).eval()
    front.feature_mean.copy_(torch.linspace(-5, 0, 20))
    front.feature_std.copy_(torch.linspace(1, 3, 20))
    clip = torch.randn(1000)
    tokens, count = front(clip[None, :, None])
    assert count.tolist() == [1 + (1000 - 200) // 80]
    mel = torchaudio.transforms.MelSpectrogram(8000, n_fft=200, hop_length=80, n_mels=20,
                                               center=False)(clip)
    features = (torch.log(mel + 1e-6).T - front.feature_mean) / front.feature_std
    torch.testing.assert_close(tokens[0], front.project(features), atol=1e-4, rtol=1e-4)
    short, count = front(torch.randn(1, 120, 1))  # shorter than a window: one frame
    assert count.tolist() == [1] and short.shape[1] == 1
    mfcc = SpectralFrontend("mfcc", 8000, 4, window=200, hop=80, n_mels=20, n_mfcc=7).eval()
    expected = torchaudio.transforms.MFCC(8000, n_mfcc=7, log_mels=True, melkwargs=dict(
        n_fft=200, hop_length=80, n_mels=20, center=False))(clip).T
    torch.testing.assert_close(mfcc.features(clip[None, :, None])[0][0], expected)


def test_spec_augment_masks_only_while_training():
    torch.manual_seed(0)
    front = SpectralFrontend("mel", 8000, 4, window=64, hop=16, n_mels=16, spec_augment=(6, 5))
    x = torch.randn(3, 800, 1)
    front.eval()
    first, second = front(x)[0], front(x)[0]
    torch.testing.assert_close(first, second)
    front.train()
    assert not torch.allclose(front(x)[0], first)


def test_frame_count_covers_a_partial_last_frame():
    assert frame_count(torch.tensor([1, 8, 9, 16]), 8).tolist() == [1, 1, 2, 2]
