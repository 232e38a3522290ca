"""`VideoPredictor`: shapes and units, the closed loop it predicts with, that it learns motion a
memoryless model cannot, and the errors bad videos get."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tsk
from tsk.estimators.video import VideoDataset


def squares(n: int = 16, frames: int = 8, size: int = 16, seed: int = 0, speed: int = 2
            ) -> np.ndarray:
    """uint8 videos `[n, T, 1, size, size]` of a 4x4 square moving left or right (drawn at
    random per video) by `speed` pixels per frame, bouncing at the edges: from one frame alone
    the next is ambiguous, so predicting it needs memory."""
    rng = np.random.default_rng(seed)
    videos = np.zeros((n, frames, 1, size, size), np.uint8)
    for i in range(n):
        x, row = int(rng.integers(0, size - 4)), int(rng.integers(0, size - 4))
        step = speed * int(rng.choice([-1, 1]))
        for t in range(frames):
            videos[i, t, 0, row:row + 4, x:x + 4] = 255
            if not 0 <= x + step <= size - 4:
                step = -step
            x += step
    return videos


def small(backbone: str = "convs5", **options) -> tsk.VideoPredictor:
    settings = dict(d_model=8, n_layers=1, max_epochs=1, enable_progress_bar=False, random_state=0)
    return tsk.VideoPredictor(backbone, **{**settings, **options})


@pytest.mark.parametrize("backbone", ["convs5", "convlstm"])
def test_predicts_frames_in_the_fitted_units(backbone):
    videos = squares()
    model = small(backbone).fit(videos)
    future = model.predict(videos[:3, :5], n_frames=4)
    assert future.shape == (3, 4, 1, 16, 16) and future.dtype == np.float32
    assert future.min() >= 0 and future.max() <= 255
    floats = videos.astype(np.float64) / 255 * 0.5 + 0.25  # in [0.25, 0.75]
    model = small(backbone).fit(floats)
    assert model.value_range_ == (0.25, 0.75)
    future = model.predict(floats[:2, :3], n_frames=2)
    assert future.min() >= 0.25 and future.max() <= 0.75


def test_generation_feeds_each_predicted_frame_back():
    """Frame k of a rollout is what the teacher-forced network predicts from the context followed
    by the rollout's frames before k: step-by-step generation matches the parallel pass."""
    videos = squares(frames=6)
    model = small(n_layers=2).fit(videos)
    net = model.net_.double()
    scaled = VideoDataset(videos[:2], model.value_range_, n_frames=3)
    context = torch.stack([scaled[i]["inputs"] for i in range(2)]).double()
    with torch.no_grad():
        rollout = net.generate(context[:, :4], 3)
        for k in range(3):
            seen = torch.cat([context[:, :4], rollout[:, :k]], dim=1)
            torch.testing.assert_close(net(seen)[:, -1], rollout[:, k])


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["convs5", "convlstm"])
def test_learns_motion_that_one_frame_does_not_tell(backbone):
    """The squares move left or right at random: a model without memory of the frames before
    can at best blur both moves (half the intensity on both sides: at least half the error of
    copying the last frame on the first predicted frame, more after). Trained briefly, each
    backbone must beat copying the last frame 5-fold on held-out videos."""
    train, test = squares(96, seed=0), squares(24, seed=1)
    model = small(backbone, d_model=16, max_epochs=25, validation_size=0, batch_size=8,
                  learning_rate=3e-3, latent_stride=2).fit(train)
    scores = model.evaluate(test, n_context=4)
    copy = np.repeat(test[:, 3:4], 4, axis=1).astype(np.float32) / 255
    copied = tsk.metrics.video_scores(test[:, 4:].astype(np.float32) / 255, copy)["mse"]
    assert scores["mse"] < 0.2 * copied, (scores["mse"], copied)
    assert model.score(test, n_context=4) == -scores["mse"]


def test_validation_and_value_range():
    videos = squares(20)
    model = small(validation_size=0.25).fit(videos)
    assert model.fit_summary_.history and model.value_range_ == (0.0, 255.0)
    model = small().fit(videos, validation_data=squares(4, seed=5))
    assert model.fit_summary_.history


def test_bad_videos_get_clear_errors():
    videos = squares(6, frames=5)
    with pytest.raises(ValueError, match=r"5-D \[n, T, C, H, W\].*add the videos axis.*add one"):
        small().fit(videos[0])
    with pytest.raises(ValueError, match="at least 2 are needed"):
        small().fit(videos[:, :1])
    nan = videos.astype(np.float32)
    nan[4, 3, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite pixel.*video 4, frame 3"):
        small().fit(nan)
    with pytest.raises(TypeError, match="numeric array"):
        small().fit(np.array([["a"]]))
    with pytest.raises(ValueError, match="not a multiple of latent_stride=4"):
        small().fit(videos[..., :14])
    model = small().fit(videos)
    with pytest.raises(ValueError, match=r"frames of 1 channel\(s\) x 16x12; the model was fitted on 1 "
                                         r"channel\(s\) x 16x16"):
        model.predict(videos[..., :12], 2)
    with pytest.raises(ValueError, match=r"frames of 3 channel\(s\)"):
        model.predict(np.repeat(videos, 3, axis=2), 2)
    with pytest.raises(ValueError, match="5 frames, not more than the 5 context frames"):
        model.evaluate(videos, n_context=5)
    with pytest.raises(ValueError, match="n_frames must be a positive integer"):
        model.predict(videos, 0)
    with pytest.raises(ValueError, match="Unknown metrics"):
        model.evaluate(videos, 2, metrics=("fvd",))


@pytest.mark.parametrize(("params", "message"), [
    ({"backbone": "s4d"}, "the video head takes frames.*convlstm, convs5"),
    ({"latent_stride": 3}, "latent_stride must be a power of two"),
    ({"d_model": 6}, "d_model=6 must be a multiple of latent_stride=4"),
    ({"validation_size": 1.0}, r"validation_size must be in \[0, 1\)"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        small(**params).fit(squares(4))
