"""What a forecasting network outputs per target value, and how it is trained and read.

An *output* object does one job for a forecasting head (`tsk.heads.forecast`): it says how many
values the head emits per target value and step (`k`), turns those raw values into the
forecast's parameters in the window's normalized units (`parameters`, the closed-form linear
start added to the location or median), undoes the window normalization on them (`restore`),
scores them against the targets (`loss`, NaN targets left out as `masked_mse` leaves them out)
and reads the point forecast and any quantile off them (`point`, `quantile`, closed form, no
sampling).

- `PointOutput`: one value, the MSE. The forecast of every network trained before probabilistic
  heads existed, with the same weights and numbers.
- `QuantileOutput(quantiles)`: one value per quantile, trained with the pinball loss, non-decreasing
  by construction (the median plus cumulative softplus steps above and below it).
- `NormalOutput`, `StudentTOutput`: a distribution's parameters (location, scale, and degrees of
  freedom), trained with the negative log-likelihood (`torch.distributions`).

Parameters are `[..., n, k]` (n target channels) for the probabilistic outputs and `[..., n]` for
the point output; `point` gives `[..., n]` for all. The prediction side (`quantile`, `crps`)
works on numpy arrays in float64; `point` and `affine` on numpy arrays and torch tensors alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

TOLERANCE = 1e-9  # how close a requested quantile must be to a trained one
EVALUATION_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""The quantiles a distribution's weighted quantile loss is averaged over (GluonTS's default)."""


def masked_mse(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The MSE over the observed targets: a NaN target (a missing value,
    `Forecaster(missing="mask")`) is left out of the sum and the count, not compared with
    anything; a batch with no observed target scores 0. Without NaN: the plain MSE. No branch on
    the data, so a GPU step never waits to ask whether anything is missing."""
    observed = ~targets.isnan()
    # the NaNs are replaced before the difference: a NaN in the unused branch of a `where` would
    # still reach the gradient
    errors = torch.where(observed, output - targets.nan_to_num(), 0.0)
    return errors.square().sum() / observed.sum().clamp_min(1)


def _stack(parts: Sequence[Any], like: Any) -> Any:
    """`parts` stacked on a new last axis, as torch tensors or numpy arrays as `like` is."""
    return torch.stack(list(parts), -1) if isinstance(like, torch.Tensor) else np.stack(parts, -1)


def _masked_mean(values: torch.Tensor, observed: torch.Tensor, per_target: int = 1) -> torch.Tensor:
    """The mean of `values` over the observed targets (and `per_target` values each): a NaN
    target's values are left out of the sum and the count, with no branch on the data."""
    return torch.where(observed, values, 0.0).sum() / (observed.sum().clamp_min(1) * per_target)


def level_quantiles(level: float) -> tuple[float, float]:
    """The quantiles bounding the central interval at `level` percent: `(1 -/+ level / 100) / 2`
    (80 -> 0.1 and 0.9)."""
    share = float(level) / 100.0
    return (1.0 - share) / 2.0, (1.0 + share) / 2.0


def check_quantiles(quantiles: Any, name: str = "quantiles") -> list[float]:
    """`quantiles` as a list of floats; raises unless it is a non-empty sequence of numbers
    strictly between 0 and 1, strictly increasing (sorted, without repeats)."""
    if isinstance(quantiles, str) or not isinstance(quantiles, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a list of probabilities, e.g. [0.1, 0.5, 0.9], got "
                        f"{quantiles!r} ({type(quantiles).__name__}).")
    values = list(np.ravel(quantiles))
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float | np.number)
           or not 0 < float(v) < 1]
    if bad or not values:
        raise ValueError(f"{name} must hold probabilities strictly between 0 and 1 (e.g. [0.1, "
                         f"0.5, 0.9]), got {quantiles!r}.")
    values = [float(v) for v in values]
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{name} must be sorted and without repeats, got {quantiles!r}: pass "
                         f"{sorted(set(values))}.")
    return values


class ForecastOutput:
    """What a forecasting head outputs per target value (see the module docstring).

    Subclasses set `k` (values per target value and step), `center` (the parameter the linear
    start feeds: the location or the median), `located` and `scaled` (per parameter: whether it
    moves with the data's mean, and scales with its standard deviation, when the units change)."""

    k: int = 1
    center: int = 0
    point_name = "mean"  # what `point` gives, as the exported metadata names it
    located: tuple[bool, ...] = (True,)
    scaled: tuple[bool, ...] = (True,)
    probabilistic = True

    def initial_raw(self) -> torch.Tensor:
        """The raw values `[k]` the head starts at (its last layer's bias, the weights zero):
        the parameters of a sensible forecast in normalized units."""
        return torch.zeros(self.k)

    def parameters(self, raw: torch.Tensor, linear: torch.Tensor | None = None) -> torch.Tensor:
        """Raw head outputs `[..., n, k]` (and the linear start `[..., n]`, added to the center
        parameter) -> the parameters, in the window's normalized units."""
        raise NotImplementedError

    def affine(self, params: Any, shift: Any, scale: Any) -> Any:
        """The parameters of the forecast of `y * scale + shift` (`shift`, `scale`: `[..., n]`,
        `scale > 0`): locations and quantiles move and scale, scales scale, shapes stay."""
        parts = []
        for j in range(self.k):
            part = params[..., j]
            if self.scaled[j]:
                part = part * scale
            if self.located[j]:
                part = part + shift
            parts.append(part)
        return _stack(parts, params)

    def restore(self, params: torch.Tensor, window: Any) -> torch.Tensor:
        """Undo the window normalization (`tsk.heads.forecast.WindowScale`) on parameters of
        the window's first `n` channels."""
        if window.mean is None:
            return params
        n = params.shape[-2]
        return self.affine(params, window.mean[..., :n], window.std[..., :n])

    def loss(self, params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of `params` against `targets [..., n]` (NaN: missing, left out)."""
        raise NotImplementedError

    def point(self, params: Any) -> Any:
        """The point forecast `[..., n]`: the median or the mean."""
        return params[..., self.center]

    def quantile(self, params: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
        """The forecast's quantiles `[..., n, len(quantiles)]`, in closed form."""
        raise NotImplementedError

    def check_levels(self, levels: Sequence[float]) -> None:
        """Raise unless this output can give central intervals at `levels` (percentages)."""

    def check_quantiles(self, quantiles: Sequence[float]) -> None:
        """Raise unless this output can give `quantiles`."""

    def crps(self, params: np.ndarray, target: np.ndarray) -> float:
        """The mean continuous ranked probability score of the forecasts `params [N, k]` of the
        values `target [N]`, in their units."""
        raise NotImplementedError

    @property
    def evaluation_quantiles(self) -> tuple[float, ...]:
        """The quantiles the weighted quantile loss averages over."""
        return EVALUATION_QUANTILES

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PointOutput(ForecastOutput):
    """A point forecast, one value per target value, trained with the MSE (`masked_mse`).

    Its parameters are the forecast itself, `[..., n]` (no parameter axis): a point network
    computes, names and saves exactly what it did before the probabilistic outputs."""

    probabilistic = False
    point_name = "point"

    def parameters(self, raw: torch.Tensor, linear: torch.Tensor | None = None) -> torch.Tensor:
        y = raw[..., 0]
        return y if linear is None else y + linear

    def affine(self, params: Any, shift: Any, scale: Any) -> Any:
        return params * scale + shift

    def restore(self, params: torch.Tensor, window: Any) -> torch.Tensor:
        return window.restore(params)

    def loss(self, params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return masked_mse(params, targets)

    def point(self, params: Any) -> Any:
        return params

    def quantile(self, params: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
        raise ValueError("A point forecast has no quantiles: fit the Forecaster with "
                         "quantiles=[...] or distribution='normal' / 'student_t'.")

    def check_levels(self, levels: Sequence[float]) -> None:
        if len(levels):
            self.quantile(np.zeros(0), [])

    def check_quantiles(self, quantiles: Sequence[float]) -> None:
        if len(quantiles):
            self.quantile(np.zeros(0), quantiles)


class QuantileOutput(ForecastOutput):
    """One value per quantile of `quantiles` (0.5 added if missing: the median is the point
    forecast), trained with the pinball loss averaged over the quantiles and observed targets.

    Non-decreasing by construction: the raw value at the median is the median (plus the linear
    start); each quantile above it is the one below plus `softplus(raw)`, each below it the one
    above minus `softplus(raw)`. The window normalization scales all of them by one positive
    std, which keeps the order. They start (the head's weights zero) at the quantiles of a
    standard normal around the linear forecast, in the window's normalized units."""

    def __init__(self, quantiles: Sequence[float]) -> None:
        values = check_quantiles(quantiles)
        if not any(abs(q - 0.5) <= TOLERANCE for q in values):
            values = sorted([*values, 0.5])
        self.quantiles = tuple(values)
        self.k = len(values)
        self.center = next(i for i, q in enumerate(values) if abs(q - 0.5) <= TOLERANCE)
        self.located = self.scaled = (True,) * self.k
        self.point_name = "median"

    def initial_raw(self) -> torch.Tensor:
        from scipy.stats import norm

        steps = np.abs(np.diff(norm.ppf(self.quantiles)))  # the gaps between normal quantiles
        raw = np.log(np.expm1(steps))  # softplus^-1
        return torch.as_tensor(np.r_[raw[: self.center], 0.0, raw[self.center:]], dtype=torch.float32)

    def parameters(self, raw: torch.Tensor, linear: torch.Tensor | None = None) -> torch.Tensor:
        c = self.center
        median = raw[..., c: c + 1] if linear is None else raw[..., c: c + 1] + linear[..., None]
        above = F.softplus(raw[..., c + 1:]).cumsum(-1)
        below = F.softplus(raw[..., :c]).flip(-1).cumsum(-1).flip(-1)
        return torch.cat([median - below, median, median + above], -1)

    def affine(self, params: Any, shift: Any, scale: Any) -> Any:
        return params * scale[..., None] + shift[..., None]

    def loss(self, params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        observed = ~targets.isnan()
        errors = targets.nan_to_num()[..., None] - params  # [..., n, Q]
        tau = params.new_tensor(self.quantiles)
        pinball = torch.maximum(tau * errors, (tau - 1.0) * errors)
        return _masked_mean(pinball, observed[..., None], self.k)

    def _indices(self, quantiles: Sequence[float]) -> list[int]:
        indices = []
        for q in quantiles:
            found = [i for i, trained in enumerate(self.quantiles) if abs(trained - q) <= TOLERANCE]
            if not found:
                raise ValueError(f"Quantile {q:g} was not trained: this model gives the "
                                 f"quantiles {list(self.quantiles)} (a distribution= model gives "
                                 "any).")
            indices.append(found[0])
        return indices

    def quantile(self, params: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
        return np.asarray(params)[..., self._indices(quantiles)]

    def levels(self) -> list[float]:
        """The central intervals' levels (percentages) the trained quantiles give: each pair
        `q`, `1 - q` below and above the median."""
        return sorted(round(100.0 * (1.0 - 2.0 * q), 9) for q in self.quantiles
                      if q < 0.5 and any(abs(p - (1.0 - q)) <= TOLERANCE for p in self.quantiles))

    def check_levels(self, levels: Sequence[float]) -> None:
        missing = [lv for lv in levels
                   if not all(any(abs(p - q) <= TOLERANCE for p in self.quantiles)
                              for q in level_quantiles(lv))]
        if missing:
            raise ValueError(
                f"Level(s) {missing} need the quantiles "
                f"{[round(q, 9) for lv in missing for q in level_quantiles(lv)]}, which this model "
                f"was not trained on (quantiles {list(self.quantiles)}): it gives the levels "
                f"{self.levels() or 'none'}. Fit it with those quantiles, or use "
                "distribution='normal' / 'student_t' (any level).")

    def check_quantiles(self, quantiles: Sequence[float]) -> None:
        self._indices(quantiles)

    def crps(self, params: np.ndarray, target: np.ndarray) -> float:
        from tsk.metrics import crps_quantiles

        return crps_quantiles(target, params, self.quantiles)

    @property
    def evaluation_quantiles(self) -> tuple[float, ...]:
        return self.quantiles

    def __repr__(self) -> str:
        return f"QuantileOutput({list(self.quantiles)})"


class NormalOutput(ForecastOutput):
    """A normal distribution per target value: `loc` (plus the linear start) and
    `scale = softplus(raw) + min_scale` (in the window's normalized units, so at least
    `min_scale` of the window's std), trained with the negative log-likelihood. The point
    forecast is `loc`, its mean and median. It starts at `scale` 1 (the window's std)."""

    k, center = 2, 0
    located, scaled = (True, False), (True, True)

    def __init__(self, min_scale: float = 1e-3) -> None:
        self.min_scale = min_scale

    def _shape_raw(self) -> list[float]:
        """The raw values of the parameters after `loc` at the start."""
        return [math.log(math.expm1(1.0 - self.min_scale))]  # scale 1

    def initial_raw(self) -> torch.Tensor:
        return torch.tensor([0.0, *self._shape_raw()])

    def parameters(self, raw: torch.Tensor, linear: torch.Tensor | None = None) -> torch.Tensor:
        loc = raw[..., 0] if linear is None else raw[..., 0] + linear
        scale = F.softplus(raw[..., 1]) + self.min_scale
        return torch.stack([loc, scale], -1)

    def distribution(self, params: torch.Tensor) -> torch.distributions.Distribution:
        """The `torch.distributions` object of `params` (no argument checks: no data-dependent
        branch in a training step)."""
        return torch.distributions.Normal(params[..., 0], params[..., 1], validate_args=False)

    def loss(self, params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        observed = ~targets.isnan()
        # the NaNs are replaced first: a NaN in the unused branch of `where` would reach the gradient
        nll = -self.distribution(params).log_prob(targets.nan_to_num())
        return _masked_mean(nll, observed)

    def _standard_quantiles(self, params: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
        from scipy.stats import norm

        return norm.ppf(np.asarray(quantiles, dtype=np.float64))

    def quantile(self, params: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
        params = np.asarray(params, dtype=np.float64)
        z = self._standard_quantiles(params, quantiles)
        return params[..., 0, None] + params[..., 1, None] * z

    def crps(self, params: np.ndarray, target: np.ndarray) -> float:
        from tsk.metrics import crps_normal

        return crps_normal(target, params[..., 0], params[..., 1])


class StudentTOutput(NormalOutput):
    """A Student's t distribution per target value: `loc` (plus the linear start), `scale` as
    `NormalOutput`'s and `df = 2 + softplus(raw)` degrees of freedom, above 2 so the
    distribution always has a finite variance (and a mean, `loc`, the point forecast, also its
    median); heavier tails than the normal's for outliers. Trained with the negative
    log-likelihood; starts at scale 1 and df 5."""

    k, center = 3, 0
    located, scaled = (True, False, False), (True, True, False)
    MIN_DF = 2.0

    def _shape_raw(self) -> list[float]:
        return [*super()._shape_raw(), math.log(math.expm1(5.0 - self.MIN_DF))]  # df 5

    def parameters(self, raw: torch.Tensor, linear: torch.Tensor | None = None) -> torch.Tensor:
        loc_scale = super().parameters(raw[..., :2], linear)
        df = F.softplus(raw[..., 2]) + self.MIN_DF
        return torch.cat([loc_scale, df[..., None]], -1)

    def distribution(self, params: torch.Tensor) -> torch.distributions.Distribution:
        return torch.distributions.StudentT(params[..., 2], params[..., 0], params[..., 1],
                                            validate_args=False)

    def _standard_quantiles(self, params: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
        from scipy.stats import t

        return t.ppf(np.asarray(quantiles, dtype=np.float64), params[..., 2, None])

    def crps(self, params: np.ndarray, target: np.ndarray) -> float:
        from tsk.metrics import crps_student_t

        return crps_student_t(target, params[..., 0], params[..., 1], params[..., 2])


class PointForecast(nn.Module):
    """A probabilistic forecasting network's point forecast alone: `net`'s parameters through
    its output's `point` (the median or the mean), `[B, H, n_out]`, as a point network
    forecasts. What `Forecaster.export` exports for a probabilistic model."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, **covariates: torch.Tensor) -> torch.Tensor:
        """The point forecast of windows `x` (with the `futr`/`static` covariates `net` reads)."""
        return self.net.forecast_output.point(self.net(x, **covariates))


POINT = PointOutput()
DISTRIBUTIONS = {"normal": NormalOutput, "student_t": StudentTOutput}


def forecast_output(quantiles: Sequence[float] | None = None,
                    distribution: str | None = None) -> ForecastOutput:
    """The output of a `Forecaster(quantiles=, distribution=)`: quantiles, a distribution, or
    (neither) the point forecast."""
    if quantiles is not None and distribution is not None:
        raise ValueError("Give quantiles or distribution, not both: a distribution gives every "
                         "quantile already.")
    if quantiles is not None:
        return QuantileOutput(quantiles)
    if distribution is not None:
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {list(DISTRIBUTIONS)} (or None, a "
                             f"point forecast), got {distribution!r}.")
        return DISTRIBUTIONS[distribution]()
    return POINT


__all__ = ["EVALUATION_QUANTILES", "POINT", "ForecastOutput", "NormalOutput", "PointForecast",
           "PointOutput", "QuantileOutput", "StudentTOutput", "check_quantiles", "forecast_output",
           "level_quantiles"]
