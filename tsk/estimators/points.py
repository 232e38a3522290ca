"""`PointCloudClassifier`: classify unordered 2-D or 3-D point sets with LION's linear group RNN
(any registered sequence backbone over serialized voxels) or the PointNet baseline."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from tsk import backbones
from tsk.datasets.points import as_point_sets
from tsk.datasets.sequences import Sequences
from tsk.estimators.classifier import Classifier
from tsk.estimators.registry import register_estimator
from tsk.heads.points import NETWORKS, LIONNet, PointNet
from tsk.heads.voxels import ORDERS

D_MODEL = 64  # LION's 64-dimensional configurations
GROUP_LAYERS = 1  # one residual block per direction, as in LION's group operator


@register_estimator
class PointCloudClassifier(Classifier):
    """Classify point clouds (sets of different sizes) with LION (`network="lion"`, default) or
    PointNet (`network="pointnet"`, the baseline).

    X: a list of `[n_i, D + F]` arrays (or one `[n, N, D + F]` array): D coordinates (2 or 3)
    then F per-point features (normals, intensity); y: one label per cloud. `coords`: D; None
    reads 2 for two columns and 3 otherwise (give `coords=2` for 2-D points with features). Each
    cloud is centred and scaled into a ball, so position and size do not matter; while training
    it is randomly scaled, jittered and (3-D) rotated about `up_axis` (y, the axis of
    modelnet40_normal_resampled; 2 for z-up meshes such as the Princeton ModelNet files; None:
    no rotation); `augment=False` turns all three off.

    LION (`tsk.heads.points`): voxels on a grid of `grid_size` cells per axis, `stages` of
    `depth` LION layers with the grid halving between stages; each layer reads the voxels in two
    serializations (`order`: "xy", LION's x-major and y-major windows of `window` cells;
    "hilbert" or "z", space-filling curves) cut into groups of `group_size` voxels (halving per
    stage), each group through the `backbone` in both directions. `d_model` (default 64),
    `n_layers` (blocks per direction, default 1), `dropout` and `backbone_kwargs` configure the
    backbone. The backbone is what reads each group: any sequence backbone serves.

    Validation, `class_weight`, evaluate/score, save/load and `tsk.tune` work as in `Classifier`.
    """

    _backbone_kinds = ("sequence",)
    _head = "point-cloud network (LION's group operator)"
    _training_defaults = {"max_epochs": 30, "patience": 5, "batch_size": 32, "learning_rate": 2e-3}
    _sample_reader = staticmethod(as_point_sets)

    # fixed for point sets: each cloud is normalized by the network, which reads all its points
    normalize = None
    pooling = "mean"
    patch_len = None
    bidirectional = False

    def __init__(
        self,
        backbone: str = "s4d",
        *,
        network: str = "lion",
        coords: int | None = None,
        grid_size: int = 32,
        stages: int = 3,
        depth: int = 1,
        group_size: int = 64,
        window: int = 8,
        order: str = "xy",
        d_model: int | None = None,
        n_layers: int | None = None,
        dropout: float | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        augment: bool = True,
        up_axis: int | None = 1,
        class_weight: str | dict | None = None,
        validation_size: float | None = None,
        **training: Any,
    ) -> None:
        self.backbone = backbone
        self.network = network
        self.coords = coords
        self.grid_size = grid_size
        self.stages = stages
        self.depth = depth
        self.group_size = group_size
        self.window = window
        self.order = order
        self.d_model = d_model
        self.n_layers = n_layers
        self.dropout = dropout
        self.backbone_kwargs = backbone_kwargs
        self.augment = augment
        self.up_axis = up_axis
        self.class_weight = class_weight
        self.validation_size = validation_size
        self._set_training_params(training)

    def fit(self, X: Any, y: Any, *, validation_data: tuple[Any, Any] | None = None,
            checkpoint_dir: str | os.PathLike | None = None) -> PointCloudClassifier:
        """Train on point sets X with labels y; `validation_data=(X_val, y_val)` and
        `checkpoint_dir` as in `Classifier.fit`."""
        return self._fit(X, y, validation_data, checkpoint_dir=checkpoint_dir)

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}.")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}.")
        if self.coords not in (None, 2, 3):
            raise ValueError(f"coords must be None, 2 or 3, got {self.coords!r}.")
        if self.up_axis not in (None, 0, 1, 2):
            raise ValueError(f"up_axis must be None, 0, 1 or 2, got {self.up_axis!r}.")
        self._check_positive_ints("grid_size", "stages", "depth", "group_size", "window")
        if self.grid_size < 2 ** (self.stages - 1):
            raise ValueError(f"grid_size={self.grid_size} cannot halve {self.stages - 1} times "
                             "between stages: raise grid_size or lower stages.")

    def _prepare_fit(self, X: Any, y: Any, validation_data: tuple[Any, Any] | None) -> Any:
        data = super()._prepare_fit(X, y, validation_data)
        columns = self.n_channels_
        self.coords_ = self.coords if self.coords is not None else (2 if columns == 2 else 3)
        if columns < self.coords_:
            raise ValueError(f"X's points have {columns} column(s), fewer than coords="
                             f"{self.coords_} coordinates.")
        return data

    def _build_net(self) -> nn.Module:
        shape = {"dims": self.coords_, "n_features": self.n_channels_ - self.coords_,
                 "n_classes": len(self.classes_)}
        options = {"up_axis": self.up_axis, "augment": self.augment,
                   "class_weights": torch.as_tensor(self.class_weights_)}
        if self.network == "pointnet":
            return PointNet(**shape, **options)
        config = self._backbone_config(self.group_size)  # no group is longer
        config.setdefault("d_model", D_MODEL)
        config.setdefault("n_layers", GROUP_LAYERS)
        return LIONNet(lambda: backbones.create(self.backbone, **config), **shape,
                       d_model=config["d_model"], grid_size=self.grid_size, stages=self.stages,
                       depth=self.depth, group_size=self.group_size, window=self.window,
                       order=self.order, **options)

    def _check_sequences(self, sequences: Sequences) -> Sequences:
        if sequences.n_channels != self.n_channels_:
            raise ValueError(f"X's points have {sequences.n_channels} column(s); the model was "
                             f"fit on {self.n_channels_} ({self.coords_} coordinates and "
                             f"{self.n_channels_ - self.coords_} feature(s)).")
        return sequences

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        state, arrays = super()._fitted_state()
        return {**state, "coords": self.coords_}, arrays

    def _restore_state(self, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        super()._restore_state(state, arrays)
        self.coords_ = state["coords"]


__all__ = ["PointCloudClassifier"]
