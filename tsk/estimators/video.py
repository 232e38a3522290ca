"""`VideoPredictor`: predict the next frames of videos with a frames backbone (ConvS5, ConvLSTM)
between a ResNet frame encoder and decoder (`tsk.heads.video`), scikit-learn style."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from tsk import backbones
from tsk.estimators.base import FitData, SequenceEstimator, check_positive_int, join_outputs
from tsk.estimators.registry import register_estimator
from tsk.heads.registry import check_backbone_kind
from tsk.heads.video import VIDEO_KINDS, VideoNet, stage_widths
from tsk.metrics import video_scores

VIDEO_METRICS = ("mse", "psnr", "ssim")


class VideoDataset(Dataset):
    """Videos `[n, T, C, H, W]` (any numeric dtype) as batch mappings of frames scaled to [-1, 1]:
    training pairs `{"inputs": frames 0..T-2, "targets": frames 1..T-1}`, or with `n_frames` the
    context to generate after, `{"inputs": all frames, "n_frames": n_frames}`."""

    def __init__(self, videos: np.ndarray, value_range: tuple[float, float],
                 n_frames: int | None = None) -> None:
        self.videos, self.n_frames = videos, n_frames
        self.low, self.span = value_range[0], value_range[1] - value_range[0]

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, item: int) -> dict[str, Any]:
        frames = torch.as_tensor(np.asarray(self.videos[item], np.float32))
        frames = (frames - self.low) / self.span * 2 - 1
        if self.n_frames is not None:
            return {"inputs": frames, "n_frames": self.n_frames}
        return {"inputs": frames[:-1], "targets": frames[1:]}


@register_estimator
class VideoPredictor(SequenceEstimator):
    """Predict the frames that follow a video's frames, with a frames backbone (`"convs5"`,
    ConvS5, Smith et al. 2023; `"convlstm"`, ConvLSTM, Shi et al. 2015) over a latent grid.

    `fit(videos)`: an array `[n, T, C, H, W]` of uint8 (0-255) or float frames. Frames are scaled
    to [-1, 1], uint8 by 0..255, floats by the training videos' own minimum and maximum
    (`value_range_`); predictions come back in the same units, float32, inside that range. The
    network (`tsk.heads.video`, the ConvSSM authors' layout) encodes each frame to a grid
    `latent_stride` times smaller (a power of two that divides H and W: 4 takes 64x64 to 16x16),
    runs the backbone over the latent frames (`d_model`, `n_layers`, `dropout` left None take the
    backbone's defaults; `backbone_kwargs` sets the others) and decodes each output to the next
    frame; training is teacher-forced on every frame of every video, with the authors' loss (half
    squared, half absolute error, summed over a frame's pixels, averaged over frames).
    `predict(context, n_frames)` conditions on the context frames and generates the next
    `n_frames`, feeding each predicted frame back.

    `validation_size` of the videos are held out to early-stop on the validation loss (best
    epoch kept); 0 trains every epoch and keeps the last weights.
    """

    _training_defaults = {"max_epochs": 20, "patience": 3, "batch_size": 8, "learning_rate": 1e-3}
    _scores = {"mse": "minimize", "psnr": "maximize", "ssim": "maximize"}

    def __init__(
        self,
        backbone: str = "convs5",
        *,
        d_model: int | None = None,
        n_layers: int | None = None,
        dropout: float | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        latent_stride: int = 4,
        validation_size: float = 0.1,
        **training: Any,
    ) -> None:
        self.backbone = backbone
        self.d_model = d_model
        self.n_layers = n_layers
        self.dropout = dropout
        self.backbone_kwargs = backbone_kwargs
        self.latent_stride = latent_stride
        self.validation_size = validation_size
        self._set_training_params(training)

    # ---- fit ------------------------------------------------------------------------------
    def fit(self, videos: Any, *, validation_data: Any = None,
            checkpoint_dir: str | os.PathLike | None = None) -> VideoPredictor:
        """Train on `videos` `[n, T, C, H, W]` (T >= 2). `validation_data` (videos of the same
        frame size) early-stops on those instead of a split of `videos`. With `checkpoint_dir`
        an interrupted fit resumes (same model, data and folder)."""
        return self._fit(videos, validation_data, checkpoint_dir=checkpoint_dir)

    def _validate_params(self) -> None:
        check_backbone_kind(self.backbone, VIDEO_KINDS, "video head")
        self._check_positive_ints("latent_stride")
        stage_widths(self._backbone_config()["d_model"], self.latent_stride)
        if not 0 <= self.validation_size < 1:
            raise ValueError(f"validation_size must be in [0, 1), got {self.validation_size!r}.")

    def _backbone_config(self, tokens: int = 0) -> dict[str, Any]:
        config = super()._backbone_config(tokens)
        config.setdefault("d_model", backbones.make_config(self.backbone, **config).d_model)
        return config

    def _prepare_fit(self, videos: Any, validation_data: Any) -> FitData:
        videos = check_videos(videos, "videos", min_frames=2)
        _, _, channels, height, width = videos.shape
        for axis, size in (("height", height), ("width", width)):
            if size % self.latent_stride:
                raise ValueError(f"Frame {axis} {size} is not a multiple of latent_stride="
                                 f"{self.latent_stride}; crop or pad the frames, or pick a "
                                 "latent_stride that divides both sides.")
        self.frame_shape_ = (channels, height, width)
        if videos.dtype == np.uint8:
            self.value_range_ = (0.0, 255.0)
        else:
            low, high = float(videos.min()), float(videos.max())
            self.value_range_ = (low, high if high > low else low + 1.0)
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(videos))
        held = 0 if validation_data is not None else int(round(self.validation_size * len(videos)))
        if held and held == len(videos):
            raise ValueError(f"validation_size={self.validation_size} leaves no training videos "
                             f"out of {len(videos)}.")
        train = videos[np.sort(order[held:])]
        if validation_data is not None:
            validation = self._check_fitted_shape(
                check_videos(validation_data, "validation_data", min_frames=2), "validation_data")
        else:
            validation = videos[np.sort(order[:held])] if held else None
        digest = hashlib.sha256(repr((videos.shape, str(videos.dtype), held)).encode())
        digest.update(np.ascontiguousarray(videos).tobytes())
        if validation_data is not None:
            digest.update(np.ascontiguousarray(validation).tobytes())
        return FitData(VideoDataset(train, self.value_range_),
                       None if validation is None else VideoDataset(validation, self.value_range_),
                       digest=digest.hexdigest())

    def _build_net(self) -> nn.Module:
        backbone = backbones.create(self.backbone, **self._backbone_config())
        return VideoNet(backbone, self.frame_shape_[0], self.latent_stride)

    # ---- predict --------------------------------------------------------------------------
    def predict(self, context: Any, n_frames: int) -> np.ndarray:
        """The `n_frames` frames after each video of `context` `[n, T, C, H, W]` (T >= 1):
        `[n, n_frames, C, H, W]` float32 in the fitted units."""
        self._check_fitted()
        check_positive_int("n_frames", n_frames)
        context = self._check_fitted_shape(check_videos(context, "context", min_frames=1), "context")
        return self._generate(context, int(n_frames))

    def _generate(self, context: np.ndarray, n_frames: int) -> np.ndarray:
        """`predict` on videos already checked."""
        outputs = self._predict_outputs(VideoDataset(context, self.value_range_, n_frames),
                                        batch_size=self._batch_size(len(context)))
        low, high = self.value_range_
        frames = (join_outputs(outputs).numpy() + 1) / 2 * (high - low) + low
        return np.clip(frames, low, high).astype(np.float32)

    def evaluate(self, videos: Any, n_context: int, metrics: tuple[str, ...] = VIDEO_METRICS
                 ) -> dict[str, Any]:
        """Condition on each video's first `n_context` frames, predict the rest and score them
        against the truth (`tsk.metrics.video_scores`, frames scaled to [0, 1] by the fitted
        range): the mean per-frame `mse` (summed over pixels), `psnr` and `ssim`, and their
        curves over the predicted steps (`*_per_step`)."""
        self._check_fitted()
        unknown = sorted(set(metrics) - set(VIDEO_METRICS))
        if unknown:
            raise ValueError(f"Unknown metrics {unknown}; choose from {VIDEO_METRICS}.")
        videos = self._check_fitted_shape(check_videos(videos, "videos", min_frames=1), "videos")
        check_positive_int("n_context", n_context)
        if videos.shape[1] <= n_context:
            raise ValueError(f"The videos have {videos.shape[1]} frames, not more than the "
                             f"{n_context} context frames: nothing is left to predict. Pass longer "
                             "videos or a smaller n_context.")
        predicted = self._generate(videos[:, :n_context], videos.shape[1] - n_context)
        low, high = self.value_range_
        truth = (np.asarray(videos[:, n_context:], np.float32) - low) / (high - low)
        scores = video_scores(truth, (predicted - low) / (high - low))
        keep = {name for metric in metrics for name in (metric, f"{metric}_per_step")}
        return {key: value for key, value in scores.items() if key in keep} | {"n": len(videos)}

    def score(self, videos: Any, n_context: int = 10) -> float:
        """Negative mean per-frame MSE of the frames after the first `n_context` (higher is
        better, as scikit-learn's scores are)."""
        return -self.evaluate(videos, n_context, metrics=("mse",))["mse"]

    def _check_fitted_shape(self, videos: np.ndarray, name: str) -> np.ndarray:
        channels, height, width = self.frame_shape_
        if videos.shape[2:] != (channels, height, width):
            raise ValueError(
                f"{name} has frames of {videos.shape[2]} channel(s) x {videos.shape[3]}x"
                f"{videos.shape[4]}; the model was fitted on {channels} channel(s) x {height}x"
                f"{width}. Resize the frames (or fit on this size).")
        return videos

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        summary = vars(self.fit_summary_) if hasattr(self, "fit_summary_") else None
        return {"frame_shape": list(self.frame_shape_), "value_range": list(self.value_range_),
                "fit_summary": summary}, {}

    def _restore_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.frame_shape_ = tuple(state["frame_shape"])
        self.value_range_ = tuple(state["value_range"])


def check_videos(videos: Any, name: str, min_frames: int) -> np.ndarray:
    """`videos` as a 5-D numeric array `[n, T, C, H, W]` with at least `min_frames` frames and no
    NaN or infinite pixel; a clear error otherwise (which axis is missing, where the NaN is)."""
    if isinstance(videos, torch.Tensor):
        videos = videos.detach().cpu().numpy()
    array = np.asarray(videos)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array [n, T, C, H, W], got dtype {array.dtype}.")
    if array.ndim != 5:
        hint = ""
        if array.ndim == 4:
            hint = (" If it is one video [T, C, H, W], add the videos axis (x[None]); if its frames "
                    "have no channel axis [n, T, H, W], add one (x[:, :, None]).")
        elif array.ndim == 3:
            hint = " One grayscale video [T, H, W] is x[None, :, None]."
        raise ValueError(f"{name} must be 5-D [n, T, C, H, W] (videos, frames, channels, height, "
                         f"width), got {array.ndim}-D shape {array.shape}.{hint}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} holds no videos.")
    if array.shape[1] < min_frames:
        raise ValueError(f"{name} has {array.shape[1]} frame(s) per video; at least {min_frames} "
                         f"{'are' if min_frames > 1 else 'is'} needed"
                         f"{' (a frame and the one after it to learn from)' if min_frames > 1 else ''}.")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            video, frame = np.argwhere(bad.any(axis=(2, 3, 4)))[0]
            raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite pixel(s), the first in "
                             f"video {video}, frame {frame}; fill or drop them before fitting or "
                             "predicting.")
    return array
