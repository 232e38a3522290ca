"""The forecasting network: normalize each window, embed, run a backbone, map time to horizon."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from tsk.backbones.common import Dropout
from tsk.heads.channels import ChannelAffine
from tsk.heads.distributions import POINT, ForecastOutput

SEQUENCE_KINDS = ("sequence",)  # the backbone kinds the generic forecasting heads take
GRID_KINDS = ("grid",)  # the kinds GridForecastNet takes (variates x time)


class ForecastLoss:
    """Mixin for forecasting networks: the training loss is that of the network's
    `forecast_output` (`tsk.heads.distributions`) against the batch's `targets`, over its
    observed targets (the batch's missing targets are NaN, its mask). A network without one
    forecasts points: the MSE (`masked_mse`, the TSLib metric, on standardized data)."""

    forecast_output: ForecastOutput = POINT

    def loss(self, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.forecast_output.loss(output, batch["targets"])


@dataclass(frozen=True)
class WindowScale:
    """Each window's per-channel mean and std `[B, 1, F]` (None: the identity), to undo a
    normalization on what a network outputs for the window's first channels (its targets)."""

    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        """`y[..., n]` in the normalized units of the window's first `n` channels -> original."""
        if self.mean is None:
            return y
        n = y.shape[-1]
        return y * self.std[..., :n] + self.mean[..., :n]

    def apply(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse of `restore`: original units -> normalized."""
        if self.mean is None:
            return y
        n = y.shape[-1]
        return (y - self.mean[..., :n]) / self.std[..., :n]

    def apply_from(self, values: torch.Tensor, first: int) -> torch.Tensor:
        """`values[..., n]` in the units of the window's channels `first .. first + n`,
        normalized as those channels are (covariates known ahead, over the horizon)."""
        if self.mean is None:
            return values
        columns = slice(first, first + values.shape[-1])
        return (values - self.mean[..., columns]) / self.std[..., columns]


class InstanceNorm(nn.Module):
    """RevIN (Kim et al., 2022): standardize each window per channel, undo it on the forecast
    (`WindowScale.restore`). With `enabled=False` it passes windows through unchanged, so a
    network writes one forward pass either way. The last `keep_last` channels pass unchanged
    (calendar features: a window's mean would erase the date they carry; missing-value flags).

    `masked` (set by `mask_missing_inputs`) reads NaN as a missing value: each channel's mean
    and std are those of its observed steps only (a channel with none gets mean 0 and std 1,
    the identity), and a missing step enters the network as 0 in the units it reads, the mean:
    the window's observed mean, or without RevIN the series' mean (the scaled data's 0)."""

    def __init__(self, enabled: bool = True, keep_last: int = 0, eps: float = 1e-5) -> None:
        super().__init__()
        self.enabled, self.keep_last, self.eps = enabled, keep_last, eps
        self.masked = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, WindowScale]:
        """`x[B, L, F]` -> the normalized window and its scale."""
        if self.masked:
            return self._masked(x)
        if not self.enabled:
            return x, WindowScale()
        mean = x.mean(dim=1, keepdim=True).detach()
        # two passes, not `x.var(dim=1)`: the same variance, ~9x faster on CPU ([64, 336, 1])
        variance = (x - mean).square().mean(dim=1, keepdim=True)
        std = torch.sqrt(variance + self.eps).detach()
        if self.keep_last:
            mean[..., -self.keep_last:], std[..., -self.keep_last:] = 0.0, 1.0
        return (x - mean) / std, WindowScale(mean, std)

    def _masked(self, x: torch.Tensor) -> tuple[torch.Tensor, WindowScale]:
        """`forward` where NaN marks a missing value: statistics over the observed steps."""
        observed = ~x.isnan()
        if not self.enabled:
            return torch.where(observed, x, 0.0), WindowScale()
        count = observed.sum(dim=1, keepdim=True)
        mean = torch.where(observed, x, 0.0).sum(dim=1, keepdim=True) / count.clamp_min(1)
        squares = torch.where(observed, x - mean, 0.0).square().sum(dim=1, keepdim=True)
        std = torch.sqrt(squares / count.clamp_min(1) + self.eps)
        unseen = count == 0  # nothing to normalize by: the identity
        mean = torch.where(unseen, 0.0, mean).detach()
        std = torch.where(unseen, 1.0, std).detach()
        if self.keep_last:
            mean[..., -self.keep_last:], std[..., -self.keep_last:] = 0.0, 1.0
        return torch.where(observed, (x - mean) / std, 0.0), WindowScale(mean, std)


def mask_missing_inputs(net: nn.Module) -> nn.Module:
    """Make every window normalization in `net` read NaN inputs as missing values
    (`InstanceNorm.masked`), the one place a forecasting network reads its raw inputs; returns
    `net`. `Forecaster(missing="mask")` calls it on every network it builds."""
    for module in net.modules():
        if isinstance(module, InstanceNorm):
            module.masked = True
    return net


class ForecastHead(nn.Module):
    """Features `[B, T, d_model]` (T tokens) -> forecast `[B, horizon, n_out]` (a point output),
    or its parameters `[B, horizon, n_out, k]` (`output`, `tsk.heads.distributions`), in the
    window's normalized units.

    Each token's features are reduced to `head_dim` values, then one linear map over the
    flattened `[T * head_dim]` window gives all horizons (and parameters) at once (a
    PatchTST-style flatten head). A linear skip from the last `lookback` input values, shared by
    channels, carries the NLinear-style baseline so the deep part learns what the linear map
    cannot; it feeds the location (or median) parameter of a probabilistic output. The deep part
    starts at the output's `initial_raw` (weights zero): the linear forecast, with a unit spread.
    """

    def __init__(
        self, lookback: int, horizon: int, d_model: int, n_out: int, head_dim: int = 8,
        dropout: float = 0.0, n_tokens: int | None = None, output: ForecastOutput = POINT,
    ) -> None:
        super().__init__()
        self.horizon, self.n_out, self.output = horizon, n_out, output
        self.reduce = nn.Linear(d_model, head_dim)
        self.flatten_proj = nn.Linear((n_tokens or lookback) * head_dim, horizon * n_out * output.k)
        self.skip = nn.Linear(lookback, horizon)
        self.dropout = Dropout(dropout)
        nn.init.zeros_(self.flatten_proj.weight)
        nn.init.zeros_(self.flatten_proj.bias)
        _start_at(self.flatten_proj.bias, output)

    def forward(self, features: torch.Tensor, targets: torch.Tensor,
                shift: torch.Tensor | None = None) -> torch.Tensor:
        """`features[B, L, d_model]`, `targets[B, L, n_out]` (normalized inputs) -> the output's
        parameters, `[B, H, n_out]` (point) or `[B, H, n_out, k]`, normalized; `shift`
        (`[B, H, n_out]`, e.g. the covariates' forecast) moves the center with the linear part."""
        batch = features.shape[0]
        reduced = self.dropout(self.reduce(features)).flatten(1)  # [B, T * head_dim]
        deep = self.flatten_proj(reduced).view(batch, self.horizon, self.n_out, self.output.k)
        linear = self.skip(targets.transpose(1, 2)).transpose(1, 2)  # [B, H, n_out]
        if shift is not None:
            linear = linear + shift
        return self.output.parameters(deep, linear)


@torch.no_grad()
def _start_at(bias: torch.Tensor, output: ForecastOutput) -> None:
    """Add the output's starting raw values to a head's last bias (`[... * k]`, parameters
    last): a zero-initialized head then starts exactly there. A point output's bias is left
    as it is."""
    if output.probabilistic:
        bias.view(-1, output.k).add_(output.initial_raw().to(bias.dtype))


class Covariates(nn.Module):
    """What a generic forecasting network reads besides its window: covariates known ahead
    (`futr [B, H, n_futr]`, their values over the horizon: a promotion plan, a holiday flag, the
    calendar) and static covariates of each sample's series (`static [B, n_static]`, numbers and
    one-hot categories, encoded by the estimator).

    The known-ahead values are also in the window (their past, channels `futr_first ..
    futr_first + n_futr` of the input), so over the horizon they are normalized with the
    window's statistics of those channels (`WindowScale.apply_from`; a missing value enters as
    0, the mean). They act twice, as TiDE's decoder reads them: each horizon step's values
    become `head_dim` features (linear, GELU), which one linear map over the flattened horizon
    turns into an additive forecast (zero at first, as the deep head is, so a fit from the ridge
    start starts exactly there), and a summary of them joins the static covariates in a vector
    added to every token the backbone reads (`condition`), so that the backbone's features of
    the past can depend on the known future and on the series. Without covariates it holds no
    parameters.
    """

    def __init__(self, n_futr: int, n_static: int, horizon: int, n_out: int, d_model: int,
                 head_dim: int = 8, futr_first: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_futr, self.n_static, self.futr_first = n_futr, n_static, futr_first
        self.horizon, self.n_out = horizon, n_out
        if n_futr:
            self.futr_embed = nn.Sequential(nn.Linear(n_futr, head_dim), nn.GELU())
            self.futr_proj = nn.Linear(horizon * head_dim, horizon * n_out)
            self.futr_context = nn.Linear(horizon * head_dim, d_model)
            self.dropout = Dropout(dropout)
            nn.init.zeros_(self.futr_proj.weight)
            nn.init.zeros_(self.futr_proj.bias)
        if n_static:
            self.static_context = nn.Linear(n_static, d_model)

    def features(self, futr: torch.Tensor | None, window: WindowScale) -> torch.Tensor | None:
        """The horizon's known-ahead values as flattened features `[B, H * head_dim]` (None
        without such covariates)."""
        if not self.n_futr:
            return None
        if futr is None:
            raise ValueError(f"This network reads {self.n_futr} covariate(s) known ahead over "
                             "the horizon, and the batch has none (`futr`).")
        values = window.apply_from(futr, self.futr_first)
        values = torch.where(values.isnan(), 0.0, values)
        return self.dropout(self.futr_embed(values)).flatten(1)

    def condition(self, tokens: torch.Tensor, features: torch.Tensor | None,
                  static: torch.Tensor | None) -> torch.Tensor:
        """`tokens [B, T, d_model]` (or `[B * V, T, d_model]`: V variates per sample) with the
        covariates' vector added to every token; `features` as `features` returns them."""
        context = None if features is None else self.futr_context(features)
        if self.n_static:
            if static is None:
                raise ValueError(f"This network reads {self.n_static} static covariate "
                                 "feature(s) per series, and the batch has none (`static`).")
            mapped = self.static_context(static)
            context = mapped if context is None else context + mapped
        if context is None:
            return tokens
        per_sample = tokens.shape[0] // context.shape[0]
        return tokens + context.repeat_interleave(per_sample, dim=0)[:, None, :]

    def forecast(self, features: torch.Tensor | None) -> torch.Tensor | None:
        """The known-ahead covariates' additive forecast `[B, H, n_out]` (normalized units; a
        probabilistic output's location or median, which moves its quantiles with it)."""
        if features is None:
            return None
        return self.futr_proj(features).view(-1, self.horizon, self.n_out)


@torch.no_grad()
def fit_skip_ridge(skip: nn.Linear, norm: InstanceNorm, n_out: int, train: Iterable) -> float:
    """Set `skip` (lookback -> horizon, shared by the `n_out` target channels, on windows
    normalized by `norm`) to the ridge regression that minimizes the training loss, with the ridge
    strength that minimizes generalized cross-validation on the same windows, and freeze it (the
    rest of the network then learns what the linear map cannot).

    This closed-form linear forecast is the "linear floor" every deep model must beat; a network
    whose deep part starts at zero starts from it instead of from noise. Rows are weighted by the
    window scale so the squares are those of the training loss. A row (a window's target
    channel) with a missing value in its horizon is left out (weight 0: the normal equations
    need the whole horizon); missing values in its lookback enter as `norm` fills them, as the
    network reads them. Returns the chosen strength.

    The strength is not picked on the validation windows: early stopping reads those, and on
    ILI they picked the strongest shrinkage, 0.1 MSE worse on the test years at every horizon
    (benchmarks/README.md, "The training recipe"). Generalized cross-validation (Golub, Heath &
    Wahba, 1979) is leave-one-out's rotation-invariant form and needs only the normal equations.
    """
    fit = _skip_normal_equations(norm, n_out, train)
    if fit is None:
        raise ValueError("No training windows to fit the linear skip on.")
    if not fit["rows"]:
        raise ValueError("No training window has a fully observed horizon to fit the closed-form "
                         "linear start on (missing values in every one): use "
                         "missing='interpolate' or a shorter horizon.")
    gram, cross, rows = fit["gram"], fit["cross"], fit["rows"]
    scale = gram.diagonal()[:-1].mean().clamp_min(1e-12)
    strengths = [float(scale * r) for r in RIDGE_STRENGTHS]
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    eye[-1, -1] = 0.0  # no penalty on the intercept
    # one solve per strength gives the weights and (G + lam I)^-1 G, whose trace is the
    # effective number of parameters
    solved = [torch.linalg.solve(gram + lam * eye, torch.cat([cross, gram], dim=1))
              for lam in strengths]
    solutions = [x[:, : cross.shape[1]] for x in solved]
    dof = [float(x[:, cross.shape[1]:].trace()) for x in solved]
    # GCV: the residual squares over (1 - effective parameters / rows)^2; a strength that leaves
    # as many effective parameters as rows interpolates them and is not a candidate (with fewer
    # rows than that for every strength, the strongest is taken)
    scores = [_residual_squares(fit, w) / (1.0 - k / rows) ** 2 if k < rows - 0.5 else math.inf
              for w, k in zip(solutions, dof, strict=True)]
    best = min(reversed(range(len(scores))), key=scores.__getitem__)
    weight = solutions[best]  # [L + 1, H]: the last row is the intercept
    skip.weight.copy_(weight[:-1].T)
    skip.bias.copy_(weight[-1])
    # frozen: the map is already optimal on the training windows, and Adam's first steps on it
    # (the same size on every weight) cost as much validation loss as the deep part then gains
    # (trained with the rest from there instead, ILI gained and ETTm1-96 lost 0.008: see
    # benchmarks/README.md, "The training recipe")
    skip.requires_grad_(False)
    return strengths[best]


RIDGE_STRENGTHS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""The ridge strengths tried, relative to the mean diagonal of X^T X (the lookback's mean
square): from almost none to as strong as the data."""


def _residual_squares(fit: dict[str, torch.Tensor], weight: torch.Tensor) -> float:
    """|Y - X W|^2 over the rows of `fit` (`_skip_normal_equations`), from its sums alone."""
    return float(fit["y_squared"] - 2 * (weight * fit["cross"]).sum()
                 + (weight * (fit["gram"] @ weight)).sum())


class RidgeForecast(ForecastLoss, nn.Module):
    """The closed-form linear forecast alone (`fit_skip_ridge`): each target channel's window,
    normalized (RevIN), through one lookback -> horizon map shared by the channels. The linear
    start of the generic head, and a baseline every forecaster is scored against.

    Input `[B, L, n_in]` (targets first) -> forecast `[B, H, n_out]`.
    """

    def __init__(self, lookback: int, horizon: int, n_out: int, instance_norm: bool = True) -> None:
        super().__init__()
        self.n_out = n_out
        self.norm = InstanceNorm(instance_norm)
        self.skip = nn.Linear(lookback, horizon)

    def fit(self, train: Iterable) -> float:
        """Solve the map on the `train` windows (`fit_skip_ridge`)."""
        return fit_skip_ridge(self.skip, self.norm, self.n_out, train)

    def forward(self, x: torch.Tensor, **covariates: torch.Tensor) -> torch.Tensor:
        """The window's forecast; covariates (`futr`, `static`) are not read: a baseline."""
        targets, window = self.norm(x[..., : self.n_out])
        return window.restore(self.skip(targets.transpose(1, 2)).transpose(1, 2))


class SeasonalNaive(ForecastLoss, nn.Module):
    """Each step of the horizon repeats the value one season earlier (the last `season` values
    tiled); the last value repeated when the window is shorter than a season or `season` is 1.
    The floor a forecaster of seasonal data must beat (M4's Naive2 deseasonalizes instead). A
    missing value (NaN) one season back forecasts 0, the mean of standardized data.

    Input `[B, L, n_in]` (targets first) -> forecast `[B, H, n_out]`.
    """

    def __init__(self, horizon: int, season: int, n_out: int) -> None:
        super().__init__()
        self.horizon, self.season, self.n_out = horizon, season, n_out

    def forward(self, x: torch.Tensor, **covariates: torch.Tensor) -> torch.Tensor:
        """The window's forecast; covariates (`futr`, `static`) are not read: a baseline."""
        length = x.shape[1]
        season = self.season if self.season <= length else 1
        steps = torch.arange(self.horizon, device=x.device) % season + length - season
        # a missing value (NaN) one season back forecasts the series' mean, the scaled data's 0
        return x[:, steps, : self.n_out].nan_to_num()


def _skip_normal_equations(
    norm: InstanceNorm, n_out: int, batches: Iterable
) -> dict[str, torch.Tensor] | None:
    """X^T X, X^T Y, |Y|^2 over all (window, target channel) rows, in float64, where a row of
    X is the normalized lookback with a 1 appended and Y the normalized future, both times
    the window's scale (the training loss compares de-normalized values), and `rows`, how many
    rows entered: those whose future has no missing (NaN) value. None if empty."""
    sums: dict[str, torch.Tensor] | None = None
    for batch in batches:
        # the whole window, as the network normalizes it (its last `keep_last` channels are
        # calendar features or flags, not targets), then its target channels
        inputs, window = norm(batch["inputs"].double())
        targets = inputs[..., :n_out]  # [B, L, n]
        future = batch["targets"].double()  # [B, H, n]
        complete = ~future.isnan().any(dim=1, keepdim=True)  # [B, 1, n]: the rows that enter
        future = window.apply(future.nan_to_num())
        scale = torch.ones_like(targets[:, :1]) if window.std is None else window.std[..., :n_out]
        scale = scale * complete
        rows_x = torch.cat([targets, torch.ones_like(targets[:, :1])], 1) * scale
        rows_x = rows_x.transpose(1, 2).reshape(-1, rows_x.shape[1])  # [B * n, L + 1]
        rows_y = (future * scale).transpose(1, 2).reshape(-1, future.shape[1])  # [B * n, H]
        batch = {"gram": rows_x.T @ rows_x, "cross": rows_x.T @ rows_y,
                 "y_squared": rows_y.square().sum(), "rows": int(complete.sum())}
        sums = batch if sums is None else {k: sums[k] + v for k, v in batch.items()}
    return sums


def default_patch_stride(patch_len: int) -> int:
    """The generic head's stride between patches unless told otherwise: half a patch, so patches
    overlap by half (PatchTST's supervised setting, 16 steps every 8)."""
    return max(patch_len // 2, 1)


def token_count(lookback: int, patch_len: int | None = None, stride: int | None = None) -> int:
    """How many tokens the generic head feeds its backbone: the time steps, or the patches
    (every `stride` steps, by default `default_patch_stride`)."""
    if patch_len is None:
        return lookback
    return (lookback - patch_len) // (stride or default_patch_stride(patch_len)) + 2


class PatchEmbedding(nn.Module):
    """PatchTST's tokenizer (Nie et al., 2023): `[B, L, n_in]` -> `[B, T, d_model]`, one token per
    window of `patch_len` steps taken every `stride` steps, the series padded at its end with
    `stride` copies of its last value so the newest steps get a patch of their own.

    The backbone then runs over T = (L - patch_len) / stride + 2 tokens instead of L steps: each
    token sees a local shape, and a lookback of 336 costs ~8x less than one token per step.
    """

    def __init__(self, lookback: int, n_in: int, d_model: int, patch_len: int = 16,
                 stride: int = 8) -> None:
        super().__init__()
        if patch_len > lookback:
            raise ValueError(f"patch_len {patch_len} is longer than the lookback {lookback}.")
        if not 1 <= stride <= patch_len:
            raise ValueError(f"the patch stride must be in [1, patch_len={patch_len}] so that "
                             f"every step is in a patch, got {stride}.")
        self.patch_len, self.stride = patch_len, stride
        self.n_tokens = token_count(lookback, patch_len, stride)
        self.project = nn.Linear(n_in * patch_len, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([x, x[:, -1:].expand(-1, self.stride, -1)], dim=1)
        patches = padded.unfold(1, self.patch_len, self.stride)  # [B, T, n_in, patch_len]
        return self.project(patches.flatten(2))


class ForecastNet(ForecastLoss, nn.Module):
    """Input `[B, L, n_in]` (targets first, then exogenous, the last `n_calendar` of them calendar
    features, which the window normalization leaves alone) -> forecast `[B, H, n_out]`, or with
    a probabilistic `output` (`tsk.heads.distributions`) its parameters `[B, H, n_out, k]`, in
    the units of the inputs (the window normalization undone; the loss is the output's).

    The backbone's tokens are the time steps (`patch_len=None`) or PatchTST's patches, of
    `patch_len` steps every `patch_stride` (None: `default_patch_stride`).
    `n_futr` covariates known ahead (input channels `futr_first` on) and `n_static` static
    features are read as `Covariates` says: `forward(x, futr=[B, H, n_futr], static=[B, S])`.
    """

    def __init__(
        self, backbone: nn.Module, lookback: int, horizon: int, n_in: int, n_out: int,
        d_model: int, head_dim: int = 8, dropout: float = 0.0, instance_norm: bool = True,
        patch_len: int | None = None, n_calendar: int = 0, output: ForecastOutput = POINT,
        n_futr: int = 0, n_static: int = 0, futr_first: int = 0, patch_stride: int | None = None,
    ) -> None:
        super().__init__()
        self.n_out, self.forecast_output = n_out, output
        self.norm = InstanceNorm(instance_norm, keep_last=n_calendar)
        if patch_len is None:
            self.embed: nn.Module = nn.Linear(n_in, d_model)
        else:
            stride = patch_stride or default_patch_stride(patch_len)
            self.embed = PatchEmbedding(lookback, n_in, d_model, patch_len, stride)
        self.backbone = backbone
        self.head = ForecastHead(
            lookback, horizon, d_model, n_out, head_dim, dropout,
            token_count(lookback, patch_len, patch_stride), output,
        )
        self.covariates = Covariates(n_futr, n_static, horizon, n_out, d_model, head_dim,
                                     futr_first, dropout)

    @property
    def skip(self) -> nn.Linear:
        """The linear map from each target channel's window to its horizon."""
        return self.head.skip

    def init_skip_ridge(self, train: Iterable) -> float:
        """Start from the closed-form ridge forecast (`fit_skip_ridge`) and freeze it there; the
        deep part is zero at first (`flatten_proj` is zero-initialized), so the network predicts
        exactly that, and training moves only the deep part, which learns the residual."""
        return fit_skip_ridge(self.head.skip, self.norm, self.n_out, train)

    def forward(self, x: torch.Tensor, futr: torch.Tensor | None = None,
                static: torch.Tensor | None = None) -> torch.Tensor:
        x, window = self.norm(x)
        known = self.covariates.features(futr, window)
        features = self.backbone(self.covariates.condition(self.embed(x), known, static))
        params = self.head(features, x[..., : self.n_out], self.covariates.forecast(known))
        return self.forecast_output.restore(params, window)


class GridForecastNet(ForecastNet):
    """Variates x time for a grid backbone (Chimera): every channel's window is tokenized on its
    own (time steps or patches, one embedding shared by the channels), the backbone reads the
    `[B, V, T, d_model]` grid of all channels' tokens (targets, exogenous and calendar channels
    alike, each told apart by its own `ChannelAffine` scale and shift), and the generic head
    (with its ridge skip) maps each target channel's tokens to its horizon, shared by the target
    channels as a channel-independent head is.

    Input `[B, L, n_in]` (targets first) -> forecast `[B, H, n_out]` (with a probabilistic
    `output`: its parameters `[B, H, n_out, k]`).
    """

    def __init__(
        self, backbone: nn.Module, lookback: int, horizon: int, n_in: int, n_out: int,
        d_model: int, head_dim: int = 8, dropout: float = 0.0, instance_norm: bool = True,
        patch_len: int | None = None, n_calendar: int = 0, output: ForecastOutput = POINT,
        n_futr: int = 0, n_static: int = 0, futr_first: int = 0, patch_stride: int | None = None,
    ) -> None:
        super().__init__(backbone, lookback, horizon, 1, 1, d_model, head_dim, dropout,
                         instance_norm, patch_len, n_calendar, output=output,
                         patch_stride=patch_stride)  # embed, head: 1 channel
        self.n_out = n_out  # target channels: the ridge skip is fit on each of them
        self.channels = ChannelAffine(n_in, d_model)
        self.covariates = Covariates(n_futr, n_static, horizon, n_out, d_model, head_dim,
                                     futr_first, dropout)

    def forward(self, x: torch.Tensor, futr: torch.Tensor | None = None,
                static: torch.Tensor | None = None) -> torch.Tensor:
        x, window = self.norm(x)
        batch, length, n_var = x.shape
        known = self.covariates.features(futr, window)
        series = x.transpose(1, 2).reshape(batch * n_var, length, 1)  # each channel alone
        tokens = self.covariates.condition(self.embed(series), known, static)  # [B * V, T, d]
        grid = self.backbone(self.channels(tokens.view(batch, n_var, *tokens.shape[1:])))  # [B, V, T, d]
        targets = grid[:, : self.n_out].flatten(0, 1)  # [B * n_out, T, d_model]
        inputs = series.view(batch, n_var, length, 1)[:, : self.n_out].flatten(0, 1)
        shift = self.covariates.forecast(known)  # [B, H, n_out] -> each target channel's
        if shift is not None:
            shift = shift.transpose(1, 2).reshape(batch * self.n_out, -1, 1)
        y = self.head(targets, inputs, shift)  # [B * n_out, H, 1(, k)]
        y = y.reshape(batch, self.n_out, y.shape[1], *y.shape[3:]).transpose(1, 2)  # [B, H, n_out(, k)]
        return self.forecast_output.restore(y, window)


class VariateForecastNet(ForecastLoss, nn.Module):
    """Variates as tokens (iTransformer; S-Mamba, "Is Mamba Effective for Time Series
    Forecasting?"): each channel's whole window is embedded as one token, the backbone mixes the
    channel tokens, and a linear map turns each token into its horizon.

    Input `[B, L, n_in]` (targets first, then exogenous, the last `n_calendar` of them calendar
    features, which the window normalization leaves alone) -> forecast `[B, H, n_out]` (with a
    probabilistic `output`: its parameters `[B, H, n_out, k]`, the projection's bias starting at
    the output's `initial_raw`).
    """

    def __init__(
        self, backbone: nn.Module, lookback: int, horizon: int, n_out: int, d_model: int,
        dropout: float = 0.0, instance_norm: bool = True, n_calendar: int = 0,
        output: ForecastOutput = POINT, n_futr: int = 0, n_static: int = 0, futr_first: int = 0,
        head_dim: int = 8,
    ) -> None:
        super().__init__()
        self.n_out, self.horizon, self.forecast_output = n_out, horizon, output
        self.norm = InstanceNorm(instance_norm, keep_last=n_calendar)
        self.embed = nn.Linear(lookback, d_model)
        self.backbone = backbone
        self.dropout = Dropout(dropout)
        self.project = nn.Linear(d_model, horizon * output.k)
        _start_at(self.project.bias, output)
        self.covariates = Covariates(n_futr, n_static, horizon, n_out, d_model, head_dim,
                                     futr_first, dropout)

    def forward(self, x: torch.Tensor, futr: torch.Tensor | None = None,
                static: torch.Tensor | None = None) -> torch.Tensor:
        x, window = self.norm(x)
        known = self.covariates.features(futr, window)
        tokens = self.covariates.condition(self.embed(x.transpose(1, 2)), known, static)
        tokens = self.backbone(tokens)  # [B, n_in, d_model]
        y = self.project(self.dropout(tokens[:, : self.n_out]))  # [B, n_out, H * k]
        raw = y.view(*y.shape[:2], self.horizon, -1).transpose(1, 2)  # [B, H, n_out, k]
        params = self.forecast_output.parameters(raw, self.covariates.forecast(known))
        return self.forecast_output.restore(params, window)


class RidgeStartNet(ForecastLoss, nn.Module):
    """A paper's own forecasting network (SpaceTime, TPGN) started from the closed-form ridge
    forecast, as the generic head is: forecast = linear skip + `gate` * network, with the gate
    zero at first, so the fit starts from the linear floor and the paper's network, initialized
    as its paper says, learns what the linear map cannot (the first step moves the gate off zero;
    from then on Adam's steps on the network do not shrink with the gate).

    Input `[B, L, n_in]` (targets first) -> forecast `[B, H, n_out]`; `norm` standardizes the
    targets for the skip (RevIN), as the network's own window normalization does.
    """

    def __init__(self, net: nn.Module, lookback: int, horizon: int, n_out: int,
                 instance_norm: bool = True) -> None:
        super().__init__()
        self.net, self.n_out = net, n_out
        self.norm = InstanceNorm(instance_norm)
        self.skip = nn.Linear(lookback, horizon)
        self.gate = nn.Parameter(torch.zeros(()))

    def init_skip_ridge(self, train: Iterable) -> float:
        """Fit the skip in closed form (`fit_skip_ridge`); with the gate at zero, the network
        then predicts exactly that forecast."""
        return fit_skip_ridge(self.skip, self.norm, self.n_out, train)

    @property
    def auxiliary_loss(self) -> torch.Tensor | None:
        """The network's own training loss, if its paper has one (SpaceTime's lag losses)."""
        return getattr(self.net, "auxiliary_loss", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        targets, window = self.norm(x[..., : self.n_out])
        linear = self.skip(targets.transpose(1, 2)).transpose(1, 2)  # [B, H, n_out]
        return window.restore(linear) + self.gate * self.net(x)
