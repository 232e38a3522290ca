"""Speech enhancement by complex ratio masking on the STFT, with any sequence backbone over the
frames (frequency bins as channels).

The noisy clip is scaled to unit RMS, its STFT `X[f, t]` taken (Hann window, centred frames,
zeros past the ends), each frame's
log-power spectrum mapped to `d_model`, the backbone run over the frames, and a complex mask
`M[f, t]` read off each output. The mask is bounded as DCCRN-E and FRCRN bound theirs: its
magnitude is `tanh` of the raw output's (below 1: the mask attenuates, it never amplifies), its
phase the raw output's. The estimate is `M * X`, back to a waveform of the clip's length by the
inverse STFT, and scaled back.

Loss (FRCRN's): the mean squared error between the mask and the ideal one, `S / X` bounded the
same way, over the clip's frames, minus the SI-SNR (dB) of the estimate over its samples.
Padding never counts: a clip's loss and estimate ignore what it is batched with (its frames read
zeros past its end either way, the backbone reads only the frames of a clip's own length when it
looks ahead, a causal one never sees the frames after, and each clip is rebuilt from its own
frames).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from tsk.heads.classify import reverse_within_lengths, run_masked, valid_mask

ENHANCE_KINDS = ("sequence",)


def bounded(mask: torch.Tensor) -> torch.Tensor:
    """A complex mask with its magnitude squashed by tanh (below 1), its phase kept."""
    magnitude = mask.abs()
    return torch.tanh(magnitude) * mask / magnitude.clamp_min(1e-8)


def masked_si_snr(reference: torch.Tensor, estimate: torch.Tensor, lengths: torch.Tensor
                  ) -> torch.Tensor:
    """SI-SNR (dB) of each clip `[B]` over its first `lengths` samples (`[B, L]` inputs)."""
    mask = valid_mask(lengths, reference.shape[0], reference.shape[1], reference.device).float()
    count = mask.sum(1, keepdim=True)
    reference = (reference - (reference * mask).sum(1, keepdim=True) / count) * mask
    estimate = (estimate - (estimate * mask).sum(1, keepdim=True) / count) * mask
    eps = 1e-8
    scale = (estimate * reference).sum(1, keepdim=True) / (reference.square().sum(1, keepdim=True) + eps)
    target = scale * reference
    noise = estimate - target
    return 10 * torch.log10((target.square().sum(1) + eps) / (noise.square().sum(1) + eps))


class EnhanceNet(nn.Module):
    """Noisy waveforms `[B, L]` (right-padded, `lengths[B]`) -> enhanced waveforms `[B, L]`.

    Training batches carry the clean clips as `targets`; `loss` is FRCRN's (module docstring),
    `metrics` the batch's mean SI-SNR (dB).
    """

    def __init__(self, backbone: nn.Module, d_model: int, n_fft: int, hop: int,
                 backward: nn.Module | None = None) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        bins = n_fft // 2 + 1
        self.embed = nn.Linear(bins, d_model)
        self.backbone = backbone
        self.backward_backbone = backward
        directions = 1 if backward is None else 2
        self.mask = nn.Linear(directions * d_model, 2 * bins)

    def frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """STFT frames (centred) of clips of `lengths` samples."""
        return lengths.div(self.hop, rounding_mode="floor") + 1

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """Centred frames, zero-padded at both ends: a clip's frames read zeros past its end
        whether it is alone or padded in a batch."""
        return torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)  # [B, F, T]

    def istft(self, spectrum: torch.Tensor, frames: torch.Tensor, lengths: torch.Tensor,
              length: int) -> torch.Tensor:
        """Each clip's waveform from its own frames only, `lengths` samples, zeros after."""
        clips = [torch.istft(spectrum[b, :, :count], self.n_fft, self.hop, window=self.window,
                             center=True, length=int(size))
                 for b, (count, size) in enumerate(zip(frames.tolist(), lengths.tolist(), strict=True))]
        return torch.stack([torch.nn.functional.pad(clip, (0, length - len(clip))) for clip in clips])

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """`inputs[B, L(, 1)]` -> `{"waveform": [B, L], ...}` with what the loss reads besides (the
        mask, the noisy spectrum, the frame counts, the input RMS)."""
        batch, length = inputs.shape[0], inputs.shape[1]
        wave = inputs.reshape(batch, length).float()
        if lengths is None:
            lengths = torch.full((batch,), length, dtype=torch.long, device=wave.device)
        valid = valid_mask(lengths, batch, length, wave.device)
        rms = (wave.square().sum(1) / lengths).sqrt().clamp_min(1e-8)[:, None]
        wave = wave / rms * valid
        spectrum = self.stft(wave)  # [B, F, T]
        frames = self.frames(lengths)
        features = self.embed(torch.log(spectrum.abs().square() + 1e-8).transpose(1, 2))
        outputs = [run_masked(self.backbone, features, frames)]
        if self.backward_backbone is not None:
            backward = run_masked(self.backward_backbone, reverse_within_lengths(features, frames),
                                  frames)
            outputs.append(reverse_within_lengths(backward, frames))
        raw = self.mask(torch.cat(outputs, dim=-1)).transpose(1, 2)  # [B, 2F, T]
        mask = bounded(torch.complex(*raw.float().chunk(2, dim=1)))
        estimate = self.istft(mask * spectrum, frames, lengths, length)
        return {"waveform": estimate * rms, "mask": mask, "spectrum": spectrum,
                "frames": frames, "rms": rms}

    def loss(self, output: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
             ) -> torch.Tensor:
        estimate = output["waveform"]
        clean = batch["targets"].reshape(estimate.shape).float()
        ideal = self.stft(clean / output["rms"]) / (output["spectrum"] + 1e-8)
        frame_mask = valid_mask(output["frames"], estimate.shape[0], ideal.shape[-1], estimate.device)
        error = (output["mask"] - bounded(ideal)).abs().square()  # [B, F, T]
        weight = frame_mask[:, None, :].float()
        mask_mse = (error * weight).sum() / (weight.sum() * error.shape[1])
        return mask_mse - masked_si_snr(clean, estimate, batch["lengths"]).mean()

    def metrics(self, output: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
                ) -> dict[str, torch.Tensor]:
        estimate = output["waveform"]
        clean = batch["targets"].reshape(estimate.shape).float()
        return {"si_snr": masked_si_snr(clean, estimate, batch["lengths"]).mean()}
