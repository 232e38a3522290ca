"""An image classifier that reads the patch grid with tsk sequence backbones: VMamba's cross-scan.

A sequence backbone sees a 1-D sequence, an image is 2-D. VMamba (Liu et al. 2024) and Vim (Zhu et
al. 2024) unroll the patch grid into sequences in several orders, scan each with its own SSM and
put the outputs back at their grid positions (cross-scan, cross-merge): a causal scanner then sees,
at every token, what lies before it in each order, and together the orders cover the whole grid.
Here the scanner is any registered tsk backbone of kind "sequence" (S4D, Mamba, LSTM, ...).

Torch only: `tsk.vision` registers `CrossScanNet` with timm; this module needs no timm.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from tsk.backbones import create
from tsk.backbones.common import Dropout
from tsk.heads.registry import check_backbone_kind

SCAN_ORDERS = ("row", "row_rev", "col", "col_rev")
"""The unrollings of an h x w grid: row-major, column-major, and each of them reversed."""
SCAN_PRESETS = {
    "row": ("row",),
    "row_bi": ("row", "row_rev"),  # Vim's forward and backward scans
    "row_col": ("row", "col"),
    "cross": SCAN_ORDERS,  # VMamba's four-way cross-scan
}
MERGES = ("mean", "sum")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def resolve_scan_orders(orders: str | Sequence[str]) -> tuple[str, ...]:
    """A preset name (`SCAN_PRESETS`) or a sequence of order names (`SCAN_ORDERS`) -> the orders."""
    if isinstance(orders, str):
        if orders not in SCAN_PRESETS:
            raise ValueError(f"Unknown scan_orders {orders!r}; use one of {', '.join(SCAN_PRESETS)} "
                             f"or a list of orders from {', '.join(SCAN_ORDERS)}.")
        return SCAN_PRESETS[orders]
    orders = tuple(orders)
    unknown = [o for o in orders if o not in SCAN_ORDERS]
    if not orders or unknown or len(set(orders)) != len(orders):
        raise ValueError(f"scan_orders must name distinct orders from {', '.join(SCAN_ORDERS)}, "
                         f"got {list(orders)}.")
    return orders


def scan_index(order: str, h: int, w: int) -> torch.Tensor:
    """`[h * w]`: the row-major grid position of the token the scan visits at each step."""
    grid = torch.arange(h * w).view(h, w)
    index = (grid if order.startswith("row") else grid.t()).reshape(-1)
    return index.flip(0) if order.endswith("_rev") else index


@functools.lru_cache(maxsize=256)
def _permutation(order: str, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`scan_index` and its inverse (step of each grid position) on `device`, built once."""
    index = scan_index(order, h, w)
    return index.to(device), torch.argsort(index).to(device)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples, in training only."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class CrossScanBlock(nn.Module):
    """`x + proj(merge_k(unscan_k(scanner_k(scan_k(conv(norm(x)))))))`, then `x + mlp(norm(x))`.

    Tokens `[B, h, w, D]`; one backbone instance per scan order (each order its own weights, as
    in VMamba). `conv`: VMamba's depthwise convolution over the grid before the scans, with SiLU
    (`conv_size` 0: none); the merge averages (or sums) the orders' outputs at each position.
    """

    def __init__(self, dim: int, backbone: str, orders: tuple[str, ...], *, merge: str = "mean",
                 mlp_ratio: float = 2.0, conv_size: int = 3, drop_path: float = 0.0,
                 backbone_dropout: float = 0.0, backbone_kwargs: dict[str, Any] | None = None
                 ) -> None:
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"Unknown merge {merge!r}; use one of {', '.join(MERGES)}.")
        if conv_size < 0 or (conv_size and conv_size % 2 == 0):
            raise ValueError(f"conv_size must be odd (the grid keeps its size) or 0 (no "
                             f"convolution), got {conv_size}.")
        self.orders, self.merge = orders, merge
        self.norm = nn.LayerNorm(dim)
        self.conv = None
        if conv_size:
            self.conv = nn.Conv2d(dim, dim, conv_size, padding=conv_size // 2, groups=dim)
        self.scanners = nn.ModuleList(
            create(backbone, d_model=dim, n_layers=1, dropout=backbone_dropout,
                   **(backbone_kwargs or {}))
            for _ in orders)
        self.proj = nn.Linear(dim, dim)
        self.mlp = None
        if mlp_ratio > 0:
            hidden = int(dim * mlp_ratio)
            self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                     nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """The token mixer alone: `[B, h, w, D]` normed tokens -> the merged scans, same shape."""
        B, h, w, D = x.shape
        if self.conv is not None:
            x = F.silu(self.conv(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        tokens = x.reshape(B, h * w, D)
        merged = 0
        for order, scanner in zip(self.orders, self.scanners, strict=True):
            index, inverse = _permutation(order, h, w, x.device)
            out = scanner(tokens[:, index])  # step t holds grid position index[t]
            merged = merged + out[:, inverse]  # back to row-major positions
        if self.merge == "mean":
            merged = merged / len(self.orders)
        return merged.reshape(B, h, w, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.proj(self.mix(self.norm(x))))
        if self.mlp is not None:
            x = x + self.drop_path(self.mlp(x))
        return x


class CrossScanNet(nn.Module):
    """Patch embedding + position embedding -> `depth` cross-scan blocks -> norm, mean over
    tokens, linear head. The timm model API (`forward_features`, `forward_head`,
    `reset_classifier`, ...), so timm's training tools take it as one of theirs.

    `backbone`: a tsk backbone of kind "sequence", built with `d_model=embed_dim, n_layers=1,
    dropout=backbone_dropout, **backbone_kwargs` for every order of every block. `scan_orders`:
    a preset of `SCAN_PRESETS` or a list of `SCAN_ORDERS`. `img_size` sizes the position
    embedding; other input sizes interpolate it. `num_classes=0`: no head (pooled features).
    `conv_size`: the depthwise convolution before the scans (0: none). `drop_rate`: dropout
    before the head; `drop_path_rate`: stochastic depth, rising linearly to the last block.
    """

    def __init__(self, backbone: str = "s4d", img_size: int | tuple[int, int] = 224,
                 patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 192, depth: int = 6, scan_orders: str | Sequence[str] = "cross",
                 merge: str = "mean", mlp_ratio: float = 2.0, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, backbone_dropout: float = 0.0,
                 conv_size: int = 3, backbone_kwargs: dict[str, Any] | None = None,
                 global_pool: str = "avg") -> None:
        super().__init__()
        spec = check_backbone_kind(backbone, ("sequence",), "the cross-scan image classifier")
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if patch_size < 1 or min(img_size) < patch_size:
            raise ValueError(f"patch_size={patch_size} must be >= 1 and fit img_size={img_size}.")
        tokens = (img_size[0] // patch_size) * (img_size[1] // patch_size)
        backbone_kwargs = dict(backbone_kwargs or {})
        # as the estimators do: a backbone that must know its input length (TPGN's max_length,
        # PGN's history) is sized to the grid's tokens unless the caller said otherwise
        if "max_length" in spec.config_fields:
            backbone_kwargs.setdefault("max_length", tokens)
        if spec.length_option:
            backbone_kwargs.setdefault(spec.length_option, tokens - 1)
        self._check_pool(global_pool)
        self.backbone, self.img_size, self.patch_size = backbone, img_size, patch_size
        self.in_chans, self.num_classes, self.global_pool = in_chans, num_classes, "avg"
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.grid_size = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.backbone_kwargs = backbone_kwargs
        self.grad_checkpointing = False

        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, *self.grid_size, embed_dim))
        orders = resolve_scan_orders(scan_orders)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()  # deeper blocks drop more
        self.blocks = nn.ModuleList(
            CrossScanBlock(embed_dim, backbone, orders, merge=merge, mlp_ratio=mlp_ratio,
                           conv_size=conv_size, drop_path=rate, backbone_dropout=backbone_dropout,
                           backbone_kwargs=backbone_kwargs)
            for rate in rates)
        self.norm = nn.LayerNorm(embed_dim)
        self.head_drop = Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_own_weights()
        gray = in_chans != 3
        self.pretrained_cfg: dict[str, Any] = {
            "num_classes": num_classes, "input_size": (in_chans, *img_size),
            "interpolation": "bicubic", "fixed_input_size": False,
            # small images (digits, CIFAR) are scored whole; ImageNet-sized ones centre-cropped
            "crop_pct": 0.875 if min(img_size) >= 96 else 1.0, "crop_mode": "center",
            "mean": (0.5,) * in_chans if gray else IMAGENET_MEAN,
            "std": (0.5,) * in_chans if gray else IMAGENET_STD,
            "first_conv": "patch_embed", "classifier": "head",
        }

    def _init_own_weights(self) -> None:
        """The position embedding as ViT's (truncated normal, std 0.02); the other layers keep
        torch's defaults (ViT's 0.02 for them learned MNIST digits more slowly: 0.78 against
        0.86 after 3 epochs of 2,000) and the backbones their own (Mamba's dt, S4D's A, ...)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name for `pretrained_cfg`."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict[str, Any]) -> None:
        self.pretrained_cfg = cfg

    @staticmethod
    def _check_pool(global_pool: str | None) -> None:
        if global_pool not in (None, "avg"):
            raise ValueError(f"global_pool must be 'avg' (the mean over tokens), got {global_pool!r}.")

    def no_weight_decay(self) -> set[str]:
        """Parameters timm's optimizer factory keeps out of weight decay: the position embedding
        and those a backbone marks so (S4D's SSM parameters, `optim_hint`)."""
        hinted = {name for name, p in self.named_parameters()
                  if getattr(p, "_optim", {}).get("weight_decay", None) == 0.0}
        return {"pos_embed"} | hinted

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups by depth, for timm's layer-wise learning-rate decay."""
        return {"stem": r"^pos_embed|^patch_embed", "blocks": [(r"^blocks\.(\d+)", None),
                                                               (r"^norm", (99999,))]}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass: less memory, one more forward."""
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh head for `num_classes` (0: none, the pooled features come out)."""
        self._check_pool(global_pool)
        self.num_classes = num_classes
        self.pretrained_cfg = {**self.pretrained_cfg, "num_classes": num_classes}
        device = self.norm.weight.device
        self.head = (nn.Linear(self.embed_dim, num_classes, device=device) if num_classes > 0
                     else nn.Identity())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images `[B, in_chans, H, W]` -> normed tokens `[B, h * w, embed_dim]` (row-major)."""
        x = self.patch_embed(x).permute(0, 2, 3, 1)  # [B, h, w, D]
        pos = self.pos_embed
        if x.shape[1:3] != pos.shape[1:3]:  # another input size: resample the learned grid
            pos = F.interpolate(pos.permute(0, 3, 1, 2), size=x.shape[1:3], mode="bicubic",
                                align_corners=False).permute(0, 2, 3, 1)
        x = x + pos
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.norm(x.flatten(1, 2))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens `[B, N, D]` -> logits `[B, num_classes]` (or the pooled `[B, D]`)."""
        x = self.head_drop(x.mean(1))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
