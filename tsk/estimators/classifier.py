"""`Classifier`: time-series classification with any registered sequence backbone, scikit-learn
style."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from tsk import backbones
from tsk.datasets.sequences import (
    SequenceDataset,
    Sequences,
    align_labels,
    as_sequences,
    pad_collate,
)
from tsk.estimators.base import FitData, SequenceEstimator
from tsk.estimators.registry import register_estimator
from tsk.heads.classify import (
    CLASSIFY_KINDS,
    NORMALIZATIONS,
    POOLINGS,
    ClassifyNet,
    GridAsSequence,
    GridTokens,
    patch_count,
)
from tsk.heads.registry import check_backbone_kind
from tsk.metrics import classification_scores

logger = logging.getLogger(__name__)

AUTO_VALIDATION_MIN_SERIES = 200
"""`validation_size=None` holds out a stratified validation split (20%) only from training sets of
at least this many series; smaller ones train a fixed budget of steps on all their series."""
AUTO_VALIDATION_SIZE = 0.2
STEP_BUDGET = 400
"""`max_epochs=None` without validation data: enough epochs for about this many optimizer steps."""
VALIDATED_EPOCHS = 100
"""`max_epochs=None` with validation data: at most this many epochs (early stopping ends most fits
sooner)."""


GRID_PATCH_LEN = 8
GRID_PATCH_MIN_LENGTH = 64  # "auto" patches a grid backbone's series from this many steps on


@register_estimator
class Classifier(ClassifierMixin, SequenceEstimator):
    """Classify whole series (univariate or multivariate, equal or different lengths) with any
    registered sequence backbone, or a grid backbone (Chimera), which reads the channels as its
    variates (each embedded on its own, `tsk.heads.classify.GridTokens`).

    X: an array `[n, L]` or `[n, C, L]`, a list of `[L_i]` / `[C_i, L_i]` arrays of different
    lengths, or a long frame (`unique_id`, optional `ds`/`position`, one column per channel);
    y: one label per series (strings, integers or booleans; for a frame, a Series indexed by
    `unique_id`, a dict, or labels in order of first appearance). Series of different lengths are
    batched with masks (`tsk.heads.classify`): a series' prediction does not depend on its
    batch-mates.

    `normalize`: "series" z-normalizes each series and channel over its own steps (as the UCR
    archive's univariate series are), "global" standardizes each channel with the training data's
    mean and std (a series' level stays: the UEA archive leaves its multivariate series as
    recorded), None feeds the raw values. "auto" (default) is "series" for one channel and
    "global" for several: on JapaneseVowels (12 cepstral channels) per-series normalization
    erases the levels that tell the speakers apart (s4d: 76% against 97%).

    Network: embed each step to `d_model`, run the backbone (`d_model`, `n_layers`, `dropout`
    left as None take the backbone's defaults; `backbone_kwargs` sets any other option), pool over
    valid steps (`pooling`: "mean", "last" or "attention") and classify; `bidirectional=True` adds
    a second backbone reading each series backwards (for data that has no arrow of time).
    `patch_len`: tokens of that many steps (every `patch_len // 2`), None one step a token;
    "auto" (default) is None, except for a grid backbone on series of at least 64 steps, which
    reads patches of 8 (Chimera, 3 seeds: UWaveGestureLibrary's 315 steps 82.5% in ~2.3 min a
    fit against 77.2% in ~11 one step a token; BasicMotions' 100 steps 97.5% in ~1.2 min against
    100% in ~5; docs/backbones/chimera.md).
    `class_weight`: None, "balanced" or {label: weight}, as in scikit-learn, weights the loss.

    Validation: the archives' training sets are small (ArrowHead 36 series, BasicMotions 40), where a
    20% split leaves too few series to early-stop on and costs a fifth of the data.
    `validation_size=None` (default) therefore holds out a stratified 20% only when the training
    set has at least 200 series (early stopping on the validation loss, best epoch kept) and
    otherwise trains on every series and keeps the last weights; a float in (0, 1) always holds
    out that fraction, 0 never does. `max_epochs=None` (default) trains at most 100 epochs with
    validation data, and without it the epochs that make about 400 optimizer steps (133 epochs
    of ArrowHead's 36 series, 57 of ECG200's 100): fixed in steps, not epochs, because the sets
    differ 10-fold in size. AdamW's step is 1e-2 (1e-3 left these small sets underfit in that
    budget: ArrowHead 51% against 75% with s4d), cosine-annealed to zero
    (benchmarks/results/classification.md).
    """

    _training_defaults = {"max_epochs": None, "patience": 10, "batch_size": 16, "learning_rate": 1e-2}
    _backbone_kinds = CLASSIFY_KINDS  # a grid backbone reads the channels as its variates
    _head = "classification head"  # what takes the backbone, as errors name it
    _scores = {"accuracy": "maximize", "balanced_accuracy": "maximize", "f1_macro": "maximize",
               "log_loss": "minimize"}
    _epoch_scores = {"minimize": "val_loss", "maximize": "val_accuracy"}
    # a subclass's reader of its own samples (None: series, `as_sequences`); it must take back
    # the arrays it returns, so `tsk.tune` can hand folds to `fit` as they are
    _sample_reader: Callable[[Any], Sequences] | None = None

    def __init__(
        self,
        backbone: str = "s4d",
        *,
        d_model: int | None = None,
        n_layers: int | None = None,
        dropout: float | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        pooling: str = "mean",
        patch_len: int | str | None = "auto",
        bidirectional: bool = False,
        normalize: str | None = "auto",
        class_weight: str | dict | None = None,
        validation_size: float | None = None,
        **training: Any,
    ) -> None:
        self.backbone = backbone
        self.d_model = d_model
        self.n_layers = n_layers
        self.dropout = dropout
        self.backbone_kwargs = backbone_kwargs
        self.pooling = pooling
        self.patch_len = patch_len
        self.bidirectional = bidirectional
        self.normalize = normalize
        self.class_weight = class_weight
        self.validation_size = validation_size
        self._set_training_params(training)

    # ---- fit ------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, validation_data: tuple[Any, Any] | None = None,
            checkpoint_dir: str | os.PathLike | None = None) -> Classifier:
        """Train on series X with labels y.

        `validation_data=(X_val, y_val)` early-stops on those series instead of a split of X
        (`validation_size` is then not used). With `checkpoint_dir`, the training checkpoints
        are kept there, and a fit interrupted earlier (same model, same data, same folder)
        resumes from its last checkpoint and ends as the uninterrupted fit would."""
        return self._fit(X, y, validation_data, checkpoint_dir=checkpoint_dir)

    def _validate_params(self) -> None:
        check_backbone_kind(self.backbone, self._backbone_kinds, self._head)
        if self.patch_len not in (None, "auto"):
            self._check_positive_ints("patch_len")
        if self.normalize not in (*NORMALIZATIONS, "auto", None):
            raise ValueError(f"normalize must be 'auto', 'series', 'global' or None, got "
                             f"{self.normalize!r}.")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}.")
        if self.validation_size is not None and not 0 <= self.validation_size < 1:
            raise ValueError(f"validation_size must be None or in [0, 1), got "
                             f"{self.validation_size!r}.")
        if not (self.class_weight is None or self.class_weight == "balanced"
                or isinstance(self.class_weight, dict)):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}, "
                             f"got {self.class_weight!r}.")

    def _prepare_fit(self, X: Any, y: Any, validation_data: tuple[Any, Any] | None) -> FitData:
        """Read and check the series and labels; encode the labels; split off validation."""
        sequences = self._read_samples(X)
        labels = align_labels(y, sequences)
        self.classes_, targets = _encode_classes(labels)
        self.n_channels_ = sequences.n_channels
        self.max_length_ = int(sequences.lengths.max())
        self.patch_len_ = self._patch_length(self.max_length_)
        self.class_weights_ = self._class_weights(targets)
        self.normalize_ = self._normalization(sequences.n_channels)
        steps = np.concatenate(sequences.values)  # every training step, [sum L_i, C]
        self.channel_mean_ = steps.mean(0).astype(np.float32)
        self.channel_std_ = np.maximum(steps.std(0), 1e-8).astype(np.float32)
        rows = np.arange(len(sequences))
        fraction = 0.0 if validation_data is not None else self._validation_fraction(len(sequences))
        validation = None
        if validation_data is not None:
            val_sequences = self._read_samples(validation_data[0])
            self.max_length_ = max(self.max_length_, int(val_sequences.lengths.max()))
            self._check_sequences(val_sequences)
            val_targets = np.searchsorted(self.classes_, self._known_labels(*validation_data))
            validation = SequenceDataset(val_sequences.values, val_targets)
        elif fraction > 0:
            counts = np.bincount(targets, minlength=len(self.classes_))
            stratify = targets if counts.min() >= 2 else None
            if stratify is None:
                logger.warning("A class has fewer than 2 series: the validation split is not "
                               "stratified.")
            rows, held = train_test_split(rows, test_size=fraction, stratify=stratify,
                                          random_state=self.random_state)
            rows, held = np.sort(rows), np.sort(held)
            validation = SequenceDataset([sequences.values[i] for i in held], targets[held])
        train = SequenceDataset([sequences.values[i] for i in rows], targets[rows])
        digest = _digest(sequences, targets, fraction)
        if validation_data is not None:
            digest = _digest(val_sequences, validation.targets.numpy(), fraction, digest)
        return FitData(train, validation, collate=pad_collate, digest=digest,
                       max_epochs=self._epochs(len(train), validation is not None))

    def _epochs(self, n_train: int, validated: bool) -> int:
        """`max_epochs`, or for None: early stopping's cap with validation data, else the epochs
        that make about `STEP_BUDGET` steps over `n_train` series."""
        if self.max_epochs is not None:
            return self.max_epochs
        if validated:
            return VALIDATED_EPOCHS
        batches = -(-n_train // self._batch_size(n_train))
        return max(1, round(STEP_BUDGET / batches))

    def _epochs_when_validated(self) -> int:
        return self._epochs(0, validated=True)

    def _normalization(self, n_channels: int) -> str:
        """`normalize`, with "auto" resolved: per series for one channel, per channel over the
        training data for several."""
        if self.normalize == "auto":
            return "series" if n_channels == 1 else "global"
        return "none" if self.normalize is None else self.normalize

    def _patch_length(self, max_length: int) -> int | None:
        """`patch_len`, with "auto" resolved: patches of `GRID_PATCH_LEN` steps for a grid
        backbone on series of at least `GRID_PATCH_MIN_LENGTH` steps, else one step a token."""
        if self.patch_len != "auto":
            return self.patch_len
        return GRID_PATCH_LEN if self._grid() and max_length >= GRID_PATCH_MIN_LENGTH else None

    def _validation_fraction(self, n_series: int) -> float:
        if self.validation_size is not None:
            return float(self.validation_size)
        return AUTO_VALIDATION_SIZE if n_series >= AUTO_VALIDATION_MIN_SERIES else 0.0

    def _class_weights(self, targets: np.ndarray) -> np.ndarray:
        if self.class_weight is None:
            return np.ones(len(self.classes_), dtype=np.float32)
        weight = self.class_weight
        if isinstance(weight, dict):
            unknown = [label for label in weight if label not in set(self.classes_.tolist())]
            if unknown:
                raise ValueError(f"class_weight names labels not in y: {unknown}; the labels are "
                                 f"{self.classes_.tolist()}.")
            weight = {int(np.flatnonzero(self.classes_ == label)[0]): w for label, w in weight.items()}
        return compute_class_weight(weight, classes=np.arange(len(self.classes_)),
                                    y=targets).astype(np.float32)

    def _tokens(self, length: int) -> int:
        """How many tokens the backbone reads for a series of `length` steps."""
        if self.patch_len_ is None:
            return length
        return patch_count(length, self.patch_len_, max(self.patch_len_ // 2, 1))

    def _build_net(self) -> nn.Module:
        config = self._backbone_config(self._tokens(self.max_length_))
        backbone = backbones.create(self.backbone, **config)
        backward = backbones.create(self.backbone, **config) if self.bidirectional else None
        d_model, dropout = backbone.config.d_model, backbone.config.dropout
        frontend = self._frontend(d_model)
        if self._grid():  # the channels are its variates
            frontend = GridTokens(d_model, self.n_channels_, self.patch_len_)
            backbone = GridAsSequence(backbone, d_model)
            backward = None if backward is None else GridAsSequence(backward, d_model)
        net = ClassifyNet(
            backbone, self.n_channels_, len(self.classes_), d_model,
            pooling=self.pooling, backward=backward, dropout=dropout,
            normalize=self.normalize_, class_weights=torch.as_tensor(self.class_weights_),
            patch_len=self.patch_len_, frontend=frontend,
        )
        net.input_mean.copy_(torch.as_tensor(self.channel_mean_))
        net.input_std.copy_(torch.as_tensor(self.channel_std_))
        return net

    def _frontend(self, d_model: int) -> nn.Module | None:
        """What turns a series into the backbone's tokens when a step or a patch does not (a
        subclass's front end, e.g. speech's); None here."""
        return None

    # ---- predict --------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities `[n, n_classes]` (columns in the order of `classes_`)."""
        self._check_fitted()
        return self._proba(self._sequences(X))

    def _proba(self, sequences: Sequences, **options: Any) -> np.ndarray:
        """The fitted network's probabilities for checked sequences; `options` go to the network
        with every batch (e.g. a front end's `step_scale`)."""
        order = np.argsort(sequences.lengths, kind="stable")  # similar lengths share batches
        dataset = SequenceDataset([sequences.values[i] for i in order])
        collate = partial(pad_collate, **options) if options else pad_collate
        logits = torch.cat(self._predict_outputs(dataset, collate=collate))
        proba = np.empty((len(sequences), len(self.classes_)), dtype=np.float64)
        proba[order] = logits.double().softmax(-1).numpy()
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each series."""
        return self.classes_[self.predict_proba(X).argmax(1)]

    def _sequences(self, X: Any) -> Sequences:
        """X read and checked against the fit."""
        return self._check_sequences(self._read_samples(X))

    def _read_samples(self, X: Any) -> Sequences:
        """X read into checked samples, not yet compared with the fit: series, or what the
        subclass's `_sample_reader` reads (point sets)."""
        return as_sequences(X) if self._sample_reader is None else self._sample_reader(X)

    def _check_sequences(self, sequences: Sequences) -> Sequences:
        if sequences.n_channels != self.n_channels_:
            raise ValueError(f"X has {sequences.n_channels} channel(s); the model was fit on "
                             f"{self.n_channels_}.")
        too_long = sequences.lengths.max()
        if "max_length" in backbones.get_spec(self.backbone).config_fields and too_long > self.max_length_:
            raise ValueError(f"Backbone {self.backbone!r} was built for series of at most "
                             f"{self.max_length_} steps (the longest in fit); got {too_long}.")
        return sequences

    # ---- evaluate -------------------------------------------------------------------------
    def evaluate(self, X: Any, y: Any) -> dict[str, Any]:
        """Accuracy, balanced accuracy, macro F1, log-loss and the confusion matrix (rows: true
        labels, columns: predicted, both in the order of `classes_`) on labelled series."""
        self._check_fitted()
        return classification_scores(self._known_labels(X, y), self.predict_proba(X), self.classes_)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy on labelled series (scikit-learn's classifier score)."""
        self._check_fitted()
        truth = self._known_labels(X, y)
        return float(np.average(self.predict(X) == truth, weights=sample_weight))

    def _known_labels(self, X: Any, y: Any) -> np.ndarray:
        return self._check_known(align_labels(y, self._read_samples(X)))

    def _check_known(self, labels: np.ndarray) -> np.ndarray:
        """`labels`, checked to be among the fitted classes."""
        unseen = sorted(set(labels.tolist()) - set(self.classes_.tolist()), key=str)
        if unseen:
            raise ValueError(f"y has labels the model never saw in fit: {unseen[:10]}; it knows "
                             f"{self.classes_.tolist()}.")
        return labels

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "n_channels": self.n_channels_,
            "max_length": self.max_length_,
            "patch_len": self.patch_len_,
            "normalize": self.normalize_,
            "fit_summary": vars(self.fit_summary_) if hasattr(self, "fit_summary_") else None,
        }
        return state, {"class_weights": self.class_weights_, "channel_mean": self.channel_mean_,
                       "channel_std": self.channel_std_}

    def _restore_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.classes_ = np.asarray(state["classes"], dtype=np.dtype(state["classes_dtype"]))
        self.n_channels_ = state["n_channels"]
        self.max_length_ = state["max_length"]
        # saved before "auto" existed: the parameter itself was the patch length
        self.patch_len_ = state.get("patch_len", self.patch_len)
        self.class_weights_ = arrays["class_weights"]
        self.normalize_ = state["normalize"]
        self.channel_mean_, self.channel_std_ = arrays["channel_mean"], arrays["channel_std"]


def _encode_classes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct labels and each series' index into them; needs two classes."""
    classes, targets = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"y has a single class ({classes.tolist()}): a classifier needs at least "
                         "two.")
    return classes, targets.astype(np.int64)


def _digest(sequences: Sequences, targets: np.ndarray, fraction: float, prefix: str = "") -> str:
    """A hash of the training data (series, labels, validation fraction; after `prefix`, the
    digest of other data), naming it for a resumable fit."""
    digest = hashlib.sha256(repr((prefix, len(sequences), fraction)).encode())
    for values in sequences.values:
        digest.update(repr(values.shape).encode())
        digest.update(values.tobytes())
    digest.update(targets.tobytes())
    return digest.hexdigest()
