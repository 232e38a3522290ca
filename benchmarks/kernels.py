"""Benchmark tsk.kernels: fast torch paths against the reference loops (CPU), Triton on GPU.

    uv run python benchmarks/kernels.py                  # CPU sections, writes results/
    uv run python benchmarks/kernels.py --quick          # small sizes, a smoke test
    uv run python benchmarks/kernels.py --ops selective_scan --threads 2
    uv run python benchmarks/kernels.py --ops scan2d         # time T and variate count V

A case is a length L (time steps), or for `scan2d` a pair (L, V): the 2-D scan is measured
against both the sequence length and the variate count.

CPU timing: wall clock (time.perf_counter) of one forward (autograd on) and of that forward plus
`torch.autograd.grad` of a fixed random projection of the outputs. Fast path and reference run
in interleaved rounds (`--rounds`; one round at L >= 16384, where the reference is slow) so both
see the same machine load; times are the best over rounds, speedup = best reference time / best
fast time, and the per-round ratios are listed too. The max absolute difference of the outputs
and the max relative difference of the gradients compare the two results.

Peak memory: each case runs in a freshly forked child process (its own heap, nothing cached
from earlier cases); after a warm-up at L=64 it builds its inputs, resets the kernel's peak-RSS
counter (`echo 5 > /proc/self/clear_refs`), runs forward + backward once and reports
VmHWM - VmRSS(before): the extra resident memory at the peak of the call, saved activations,
workspaces and gradients included. Linux only (empty elsewhere). Not tracemalloc (it does not see
torch's allocations) and not the CUDA allocator (CPU).

GPU section (only with CUDA): Triton vs torch path vs torch.compile of the torch path, timed with
CUDA events, and the fraction of the roofline: t_bound = max(bytes_min / bandwidth,
flops / peak_flops), fraction = t_bound / t_measured, against the spec bandwidth (when the device
is known) and a measured device-to-device copy.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tsk.kernels import (  # noqa: E402
    cauchy,
    fftconv,
    linear_scan,
    lstm_scan,
    s4d_kernel,
    scan2d,
    selective_scan,
)

RESULTS = ROOT / "benchmarks" / "results"


# ----------------------------------------------------------------------------- inputs per op
def make_case(op: str, length: int, device: str = "cpu", seed: int = 0,
              dtype: torch.dtype = torch.float32, dims: dict | None = None) -> dict:
    """Inputs (leaf tensors needing grad), a call `fn(backend)` and the size description.

    `dtype` is the activations' dtype (parameters such as A and D stay float32, as in models);
    `dims` overrides the op's default sizes (selective_scan: B, D, N).
    """
    gen = torch.Generator().manual_seed(seed)
    elt = torch.finfo(dtype).bits // 8

    def leaf(t: torch.Tensor, cast: bool = True) -> torch.Tensor:
        cast = cast and not t.is_complex()
        return t.to(device, dtype if cast else t.dtype).requires_grad_()

    if op == "selective_scan":
        dims = dims or {}
        batch, channels, state = dims.get("B", 4), dims.get("D", 256), dims.get("N", 16)
        u = leaf(torch.randn(batch, channels, length, generator=gen))
        delta = leaf(torch.randn(batch, channels, length, generator=gen) * 0.5 - 2)
        A = leaf(-torch.exp(torch.randn(channels, state, generator=gen) * 0.5), cast=False)
        B = leaf(torch.randn(batch, state, length, generator=gen))
        C = leaf(torch.randn(batch, state, length, generator=gen))
        D = leaf(torch.randn(channels, generator=gen), cast=False)
        inputs = [u, delta, A, B, C, D]

        def fn(backend):
            if backend == "mamba_ssm":
                return mamba_selective_scan(u, delta, A, B, C, D)
            return selective_scan(u, delta, A, B, C, D, delta_softplus=True, backend=backend)[0]

        size = dict(B=batch, D=channels, N=state)
        # bytes: read u, delta, B, C, write y (forward); flops ~ 9 per state element
        bytes_min = elt * (3 * batch * channels * length + 2 * batch * state * length)
        flops = 9 * batch * channels * state * length
    elif op == "scan2d":
        dims = dims or {}
        batch, channels, n_var, state = (dims.get("B", 8), dims.get("D", 64), dims.get("V", 7),
                                         dims.get("N", 8))
        grid = (batch, channels, n_var, length)
        u = leaf(torch.randn(*grid, generator=gen))
        delta_t = leaf(0.01 + 0.1 * torch.rand(*grid, generator=gen))
        delta_v = leaf(0.01 + 0.1 * torch.rand(*grid, generator=gen))
        A1, A4 = (leaf(-torch.exp(torch.randn(channels, state, generator=gen) * 0.5), cast=False)
                  for _ in range(2))
        A2, A3 = (leaf(0.3 * torch.randn(channels, state, generator=gen), cast=False)
                  for _ in range(2))
        BC = [leaf(torch.randn(batch, state, n_var, length, generator=gen)) for _ in range(4)]  # noqa: N806
        D = leaf(torch.randn(channels, generator=gen), cast=False)
        inputs = [u, delta_t, delta_v, A1, A2, A3, A4, *BC, D]

        def fn(backend):
            return scan2d(u, delta_t, delta_v, A1, A2, A3, A4, *BC, D, backend=backend)[0]

        size = dict(B=batch, D=channels, V=n_var, N=state)
        cells = batch * n_var * length
        # bytes: read u, both steps, the four B/C, write y; flops ~ 20 per state element
        bytes_min = elt * cells * (4 * channels + 4 * state)
        flops = 20 * cells * channels * state
    elif op == "linear_scan":
        batch, width = 4, 256
        a = leaf(torch.rand(batch, length, width, generator=gen) * 0.5 + 0.5)
        b = leaf(torch.randn(batch, length, width, generator=gen))
        inputs = [a, b]

        def fn(backend):
            return linear_scan(a, b, backend=backend)[0]

        size = dict(B=batch, D=width)
        bytes_min = 4 * 3 * batch * length * width
        flops = 2 * batch * length * width
    elif op == "fftconv":
        batch, heads = 2, 64
        u = leaf(torch.randn(batch, heads, length, generator=gen))
        k = leaf(torch.randn(heads, length, generator=gen) / math.sqrt(length))
        D = leaf(torch.randn(heads, generator=gen))
        inputs = [u, k, D]

        def fn(backend):
            return fftconv(u, k, D, backend=backend)

        size = dict(B=batch, H=heads, Lk=length)
        bytes_min = 4 * (2 * batch * heads * length + heads * length)
        flops = int(3 * 5 * batch * heads * 2 * length * math.log2(2 * length))
    elif op == "s4d_kernel":
        heads, state = 256, 32
        A = leaf(torch.complex(-0.5 * torch.ones(heads, state),
                               math.pi * torch.arange(state).float().expand(heads, state)))
        B = leaf(torch.randn(heads, state, 2, generator=gen)).detach()
        B = leaf(torch.view_as_complex(B))
        C = leaf(torch.view_as_complex(torch.randn(heads, state, 2, generator=gen)))
        log_dt = leaf(torch.rand(heads, generator=gen) * math.log(100) + math.log(1e-3))
        inputs = [A, B, C, log_dt]

        def fn(backend):
            return s4d_kernel(A, B, C, log_dt, length, backend=backend)

        size = dict(H=heads, N=state)
        bytes_min = 4 * heads * length
        flops = 10 * heads * state * length
    elif op == "cauchy":
        heads, state = 256, 64
        v = leaf(torch.view_as_complex(torch.randn(heads, state, 2, generator=gen)))
        w = leaf(torch.complex(-0.5 - torch.rand(heads, state, generator=gen),
                               torch.randn(heads, state, generator=gen) * 10))
        angles = 2 * math.pi * torch.arange(length) / length
        z = torch.polar(torch.ones(length), angles).to(device)
        inputs = [v, w]

        def fn(backend):
            return cauchy(v, z, w, backend=backend)

        size = dict(H=heads, N=state)
        bytes_min = 8 * heads * length
        flops = 12 * heads * state * length
    elif op == "lstm_scan":
        dims = dims or {}
        batch, heads, head_dim = dims.get("B", 16), dims.get("H", 4), dims.get("Dh", 32)
        gates_x = leaf(torch.randn(batch, length, 4, heads, head_dim, generator=gen))
        R = leaf(torch.randn(heads, 4 * head_dim, head_dim, generator=gen) / math.sqrt(head_dim))
        bias = leaf(torch.randn(4, heads, head_dim, generator=gen) * 0.1)
        inputs = [gates_x, R, bias]

        def fn(backend):
            if backend == "cudnn":
                return cudnn_lstm_scan(gates_x, R, bias)
            return lstm_scan(gates_x, R, bias, backend=backend)[0]

        size = dict(B=batch, H=heads, Dh=head_dim)
        hidden = heads * head_dim
        bytes_min = elt * (4 * batch * length * hidden + batch * length * hidden)
        flops = 2 * batch * length * 4 * hidden * head_dim + 10 * batch * length * hidden
    else:
        raise ValueError(f"unknown op {op!r}")
    return dict(inputs=inputs, fn=fn, size=size, bytes_min=bytes_min, flops=flops)


def cudnn_lstm_scan(gates_x: torch.Tensor, R: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """The same recurrence through cuDNN's LSTM (one head: R is its `weight_hh`): the input
    weights are the identity, so cuDNN's input GEMM passes the precomputed gates through (a
    small extra cost the fused kernel does not pay). The baseline FlashRNN measures against."""
    batch, length, _, heads, head_dim = gates_x.shape
    if heads != 1:
        raise ValueError("the cuDNN baseline runs one head (a dense recurrent matrix)")
    x = gates_x.reshape(batch, length, 4 * head_dim)
    eye = torch.eye(4 * head_dim, dtype=x.dtype, device=x.device)
    zeros = x.new_zeros(batch, head_dim)
    weights = [eye, R[0], bias.reshape(-1), torch.zeros_like(bias).reshape(-1)]
    # torch.nn.LSTM's own call (params: w_ih, w_hh, b_ih, b_hh; one layer, batch first)
    return torch._VF.lstm(x, (zeros[None], zeros[None]), weights, True, 1, 0.0, True, False, True)[0]


def _loss_weight(out: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    real = out.real if out.is_complex() else out
    return torch.randn(real.shape, generator=gen).to(real)


def _loss(out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((out.real if out.is_complex() else out) * weight).sum()


def timed_run(case: dict, backend: str, repeats: int):
    """Best-of-`repeats` (forward time, forward+backward time), and the last outputs/grads."""
    best_fwd = best_total = math.inf
    out = grads = weight = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = case["fn"](backend)
        t1 = time.perf_counter()
        if weight is None:
            weight = _loss_weight(out)  # not timed
        t2 = time.perf_counter()
        grads = torch.autograd.grad(_loss(out, weight), case["inputs"])
        t3 = time.perf_counter()
        best_fwd, best_total = min(best_fwd, t1 - t0), min(best_total, t1 - t0 + t3 - t2)
    return best_fwd, best_total, out.detach(), [g.detach() for g in grads]


def _max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# ----------------------------------------------------------------------------- peak memory
def _rss_kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else -1


def memory_case(op: str, length: int, backend: str, dims: dict | None = None) -> float:
    """Extra peak RSS (MiB) of one forward + backward; meant to run in a fresh child process."""
    warm = make_case(op, 64, dims=dims)  # first-call work (lazy imports, caches) at a tiny size
    out = warm["fn"](backend)
    torch.autograd.grad(_loss(out, _loss_weight(out)), warm["inputs"])
    del warm, out
    case = make_case(op, length, dims=dims)
    with torch.no_grad():
        weight = _loss_weight(case["fn"]("torch"))  # needs only the output's shape
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    out = case["fn"](backend)
    torch.autograd.grad(_loss(out, weight), case["inputs"])
    peak = _rss_kib("VmHWM")
    return round((peak - before) / 1024, 1)


def _memory_child(op: str, length: int, backend: str, threads: int, conn,
                  dims: dict | None = None) -> None:
    torch.set_num_threads(threads)
    try:
        conn.send(memory_case(op, length, backend, dims))
    except Exception as err:  # noqa: BLE001 (reported by the parent)
        conn.send(repr(err))
    conn.close()


def measure_memory(op: str, length: int, backend: str, threads: int,
                   dims: dict | None = None) -> float | None:
    """Peak extra memory in a forked child (fresh heap, no import cost); Linux only."""
    if platform.system() != "Linux" or not Path("/proc/self/clear_refs").exists():
        return None
    import multiprocessing as mp  # noqa: PLC0415

    ctx = mp.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_memory_child,
                        args=(op, length, backend, threads, child_conn, dims))
    child.start()
    result = parent_conn.recv() if parent_conn.poll(900) else "timed out"
    child.join(10)
    if child.is_alive():
        child.kill()
    if not isinstance(result, float):
        print(f"  memory measurement failed for {op} L={length} {backend}: {result}")
        return None
    return result


# ----------------------------------------------------------------------------- CPU section
DEFAULT_LENGTHS = {
    "selective_scan": [1024, 4096, 16384],
    "linear_scan": [1024, 4096, 16384],
    "fftconv": [1024, 2048],
    "s4d_kernel": [1024, 4096],
    "cauchy": [1024, 4096],
    "lstm_scan": [96, 336],
    # (time steps, variates): ETTh1's 7 and Weather's 21 channels at two lookbacks
    "scan2d": [(96, 7), (336, 7), (96, 21)],
}
QUICK_LENGTHS = {op: [(16, 3)] if op == "scan2d" else [128, 256] for op in DEFAULT_LENGTHS}
MEMORY_LENGTHS = {
    "selective_scan": [1024, 2048, 4096, 8192, 16384],
    "linear_scan": [1024, 4096, 16384],
    "fftconv": [1024, 4096],
    "s4d_kernel": [1024, 4096, 16384],
    "cauchy": [1024, 4096, 16384],
    "lstm_scan": [336, 1024],
    "scan2d": [(96, 7), (192, 7), (384, 7), (96, 14), (96, 28)],
}


def _case_size(case: int | tuple[int, int]) -> tuple[int, dict | None]:
    """A listed case as (length, dims): a length alone, or scan2d's (length, variates)."""
    if isinstance(case, tuple):
        return case[0], {"V": case[1]}
    return case, None


def environment(threads: int) -> dict:
    import triton  # noqa: PLC0415

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return dict(
        machine=f"{platform.node()} ({cpu})", cpu_count=os.cpu_count(), threads=threads,
        torch=torch.__version__, triton=triton.__version__,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def best_of_alternating(seconds: Callable[[str], float], arms: list[str],
                        rounds: int) -> dict[str, float]:
    """Best time per arm over `rounds`, the arms alternating within each round so that they
    share its machine load (a first round warms up and is not counted)."""
    best = dict.fromkeys(arms, float("inf"))
    for round_ in range(rounds + 1):
        for arm in arms:
            elapsed = seconds(arm)
            if round_:
                best[arm] = min(best[arm], elapsed)
    return best


def write_table(stem: Path, rows: list[dict], markdown: list[str]) -> None:
    """`rows` to `stem.csv` and the markdown lines to `stem.md`."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    with stem.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stem.with_suffix(".md").write_text("\n".join(markdown) + "\n")


def cpu_section(args) -> list[dict]:
    rows = []
    lengths = QUICK_LENGTHS if args.quick else DEFAULT_LENGTHS
    for op in args.ops:
        for listed in lengths[op]:
            length, dims = _case_size(listed)
            case = make_case(op, length, dims=dims)
            rounds = args.rounds if length < 16384 else 1
            timed_run(case, "torch", 1)  # warm-up (first-call costs)
            fast, ref, ratios = [], [], []
            for _ in range(rounds):  # interleaved, so both paths see the same machine load
                fast_fwd, fast_total, out, grads = timed_run(case, "torch", args.repeats)
                ref_fwd, ref_total, out_ref, grads_ref = timed_run(case, "reference", 1)
                fast.append((fast_fwd, fast_total))
                ref.append((ref_fwd, ref_total))
                ratios.append(ref_total / fast_total)
            fast_fwd, fast_total = (min(x[i] for x in fast) for i in (0, 1))
            ref_fwd, ref_total = (min(x[i] for x in ref) for i in (0, 1))
            grad_diff = max(_max_rel_diff(g, r) for g, r in zip(grads, grads_ref, strict=True))
            row = dict(
                op=op, L=length, size=" ".join(f"{k}={v}" for k, v in case["size"].items()),
                fast_fwd_s=round(fast_fwd, 5), ref_fwd_s=round(ref_fwd, 5),
                speedup_fwd=round(ref_fwd / fast_fwd, 2),
                fast_fwd_bwd_s=round(fast_total, 5), ref_fwd_bwd_s=round(ref_total, 5),
                speedup_fwd_bwd=round(ref_total / fast_total, 2),
                speedup_fwd_bwd_per_round=" ".join(f"{r:.1f}" for r in ratios),
                max_abs_diff_out=f"{(out - out_ref).abs().max().item():.2e}",
                max_rel_diff_grads=f"{grad_diff:.2e}",
                rounds=rounds, fast_repeats_per_round=args.repeats,
            )
            print(json.dumps(row))
            rows.append(row)
            del case, out, grads, out_ref, grads_ref
    return rows


def memory_section(args) -> list[dict]:
    rows = []
    lengths = QUICK_LENGTHS if args.quick else MEMORY_LENGTHS
    for op in args.ops:
        for listed in lengths[op]:
            length, dims = _case_size(listed)
            fast = measure_memory(op, length, "torch", args.threads, dims)
            ref = None
            if length <= args.memory_ref_max_length:
                ref = measure_memory(op, length, "reference", args.threads, dims)
            row = dict(op=op, L=length, **(dims or {}), fast_peak_extra_mib=fast,
                       ref_peak_extra_mib=ref)
            print(json.dumps(row))
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- GPU section
SPEC_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}  # bytes/s (SXM parts)
SPEC_FP32 = {"H100": 67e12, "H200": 67e12, "A100": 19.5e12}  # non-tensor-core FP32 flop/s
# the reference size for selective_scan (a Mamba-1.4B-like layer), both dtypes
GPU_SCAN_CASES = [dict(L=4096, dtype=torch.bfloat16), dict(L=4096, dtype=torch.float32),
                  dict(L=1024, dtype=torch.bfloat16), dict(L=16384, dtype=torch.bfloat16)]
GPU_SCAN_DIMS = dict(B=8, D=1536, N=16)
# FlashRNN's setting: one head of 64 against cuDNN's dense LSTM, and several small heads
GPU_LSTM_CASES = [dict(L=L, dtype=dtype, dims=dims) for L in (1024, 4096)
                  for dtype in (torch.float32, torch.bfloat16)
                  for dims in (dict(B=16, H=1, Dh=64), dict(B=16, H=12, Dh=64))]


class _MambaScan(torch.autograd.Function):
    """`mamba_ssm`'s CUDA selective scan (its `selective_scan_cuda` extension), the yardstick."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D):  # noqa: N803
        import selective_scan_cuda  # noqa: PLC0415

        out, x, *_ = selective_scan_cuda.fwd(u, delta, A, B[:, None], C[:, None], D, None, None,
                                             True)
        ctx.save_for_backward(u, delta, A, B, C, D, x)
        return out

    @staticmethod
    def backward(ctx, grad):
        import selective_scan_cuda  # noqa: PLC0415

        u, delta, A, B, C, D, x = ctx.saved_tensors  # noqa: N806
        du, ddelta, dA, dB, dC, dD, *_ = selective_scan_cuda.bwd(  # noqa: N806
            u, delta, A, B[:, None], C[:, None], D, None, None, grad.contiguous(), x, None, None,
            True, False)
        return du, ddelta, dA, dB[:, 0], dC[:, 0], dD


def mamba_selective_scan(u, delta, A, B, C, D):  # noqa: N803
    return _MambaScan.apply(u, delta, A, B, C, D)


def _mamba_available() -> bool:
    try:
        import selective_scan_cuda  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _cuda_time(fn: Callable[[], object], repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / 1e3 / repeats


def _copy_bandwidth() -> float:
    """Measured device-to-device copy bandwidth (bytes read + written per second)."""
    src = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    seconds = _cuda_time(lambda: dst.copy_(src), 10)
    return 2 * src.numel() / seconds


def _gpu_row(op: str, case: dict, variant: str, call, bandwidths: dict, spec_flops) -> dict:
    """Forward time (no autograd), forward+backward time and peak extra memory of one variant."""
    with torch.no_grad():
        fwd = _cuda_time(call)
    weight = _loss_weight(call())

    def fwd_bwd():
        torch.autograd.grad(_loss(call(), weight), case["inputs"])

    total = _cuda_time(fwd_bwd, 10)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fwd_bwd()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    row = dict(op=op, variant=variant, fwd_s=round(fwd, 7), fwd_bwd_s=round(total, 7),
               peak_extra_mib=round(peak, 1))
    for label, bw in bandwidths.items():
        bound = case["bytes_min"] / bw
        if spec_flops is not None:
            bound = max(bound, case["flops"] / spec_flops)
        row[f"fwd_roofline_fraction_{label}_bw"] = round(bound / fwd, 3)
    return row


def gpu_section(args) -> list[dict]:
    """Triton vs the torch path (vs torch.compile of it, vs mamba_ssm's CUDA kernel when built)."""
    if not torch.cuda.is_available():
        print("GPU section skipped: CUDA is not available on this machine "
              "(Triton timings and roofline fractions need a GPU).")
        return []
    name = torch.cuda.get_device_name()
    spec_bw = next((v for k, v in SPEC_BANDWIDTH.items() if k in name), None)
    spec_flops = next((v for k, v in SPEC_FP32.items() if k in name), None)
    bandwidths = {"copy": _copy_bandwidth()}
    if spec_bw is not None:
        bandwidths["spec"] = spec_bw
    print(f"GPU {name}: measured copy bandwidth {bandwidths['copy'] / 1e12:.2f} TB/s")
    rows = []
    for op in args.ops:
        if op == "selective_scan":
            settings = [(c["L"], c["dtype"], GPU_SCAN_DIMS) for c in GPU_SCAN_CASES]
        elif op == "lstm_scan":
            settings = [(c["L"], c["dtype"], c["dims"]) for c in GPU_LSTM_CASES]
        elif op == "scan2d":
            settings = [(length, torch.float32, dict(B=32, D=128, V=n_var, N=16))
                        for length, n_var in ((96, 7), (336, 21), (96, 321))]
        else:
            settings = [(length, torch.float32, None) for length in (1024, 4096)]
        if args.quick:
            settings = [(256, torch.float32, None)]
        for length, dtype, dims in settings:
            case = make_case(op, length, device="cuda", dtype=dtype, dims=dims)
            variants = {"triton": lambda c=case: c["fn"]("triton")}
            if length <= 4096:  # the torch paths' L-step loops make longer runs slow to time
                variants["torch"] = lambda c=case: c["fn"]("torch")
            if op == "selective_scan" and _mamba_available():
                variants["mamba_ssm"] = lambda c=case: c["fn"]("mamba_ssm")
            if op == "lstm_scan" and case["size"]["H"] == 1:
                variants["cudnn"] = lambda c=case: c["fn"]("cudnn")
            if op not in ("selective_scan", "linear_scan", "lstm_scan", "scan2d"):  # step loops
                variants["torch.compile"] = torch.compile(lambda c=case: c["fn"]("torch"))
            for variant, call in variants.items():
                try:
                    row = _gpu_row(op, case, variant, call, bandwidths, spec_flops)
                except Exception as err:  # noqa: BLE001 (report and go on)
                    print(f"  {op} L={length} {variant} failed: {err}")
                    continue
                row = dict(L=length, dtype=str(dtype).removeprefix("torch."),
                           size=" ".join(f"{k}={v}" for k, v in case["size"].items()),
                           device=name, **row)
                print(json.dumps(row))
                rows.append(row)
            if op == "selective_scan":  # what autotuning picked, for the log
                from tsk.kernels.selective_scan import triton as scan_kernels  # noqa: PLC0415

                print("  autotuned:", *(getattr(k, "best_config", None) for k in (
                    scan_kernels._selective_scan_fwd_kernel,
                    scan_kernels._selective_scan_bwd_kernel)))
            del case
            torch.cuda.empty_cache()
    return rows


# ----------------------------------------------------------------------------- output
def write_results(env: dict, cpu_rows: list[dict], mem_rows: list[dict], gpu_rows: list[dict],
                  suffix: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = [dict(section="cpu_time", **r, **env) for r in cpu_rows]
    rows += [dict(section="cpu_peak_memory", **r, **env) for r in mem_rows]
    rows += [dict(section="gpu", **r, **env) for r in gpu_rows]
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    path = RESULTS / f"kernels{suffix}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
    md = RESULTS / f"kernels{suffix}.md"
    md.write_text(markdown_summary(env, cpu_rows, mem_rows, gpu_rows))
    print(f"wrote {md}")


def _table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    cell = lambda value: "" if value is None else str(value)  # noqa: E731
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def markdown_summary(env: dict, cpu_rows: list[dict], mem_rows: list[dict],
                     gpu_rows: list[dict]) -> str:
    """The results as markdown tables (regenerated by every run of this script)."""
    parts = [
        "# tsk.kernels benchmark",
        "",
        f"Generated by `benchmarks/kernels.py` on {env['date']}: {env['machine']}, "
        f"{env['cpu_count']} CPUs, {env['threads']} torch thread(s), torch {env['torch']}, "
        f"triton {env['triton']}. Raw numbers: `kernels*.csv`.",
        "",
        "## CPU time: fast torch path vs the reference loop",
        "",
        "Best wall-clock time over interleaved rounds (fast path best of 2 per round); "
        "`fwd+bwd` = forward plus `torch.autograd.grad` of every input. Speedup = reference / "
        "fast; per-round ratios show the spread (the machine was shared with other jobs).",
        "",
        _table(cpu_rows, ["op", "L", "size", "fast_fwd_s", "ref_fwd_s", "speedup_fwd",
                          "fast_fwd_bwd_s", "ref_fwd_bwd_s", "speedup_fwd_bwd",
                          "speedup_fwd_bwd_per_round", "max_abs_diff_out",
                          "max_rel_diff_grads"]),
        "",
        "## CPU peak memory of forward + backward (MiB above the inputs)",
        "",
        "Each case in a freshly forked process: peak RSS (VmHWM, reset through "
        "/proc/self/clear_refs) minus the RSS before the call; includes saved activations, "
        "workspaces and the gradients. Empty reference cells: not measured (too large).",
        "",
        _table(mem_rows, ["op", "L", "V", "fast_peak_extra_mib", "ref_peak_extra_mib"]),
        "",
        "## Reading the numbers",
        "",
        "- References: `selective_scan`, `linear_scan`: a Python loop over time with autograd "
        "(unbind per step, so its backward is O(L), not O(L^2) as with x[..., t] indexing); "
        "`fftconv`: one shifted copy of u per kernel tap; `s4d_kernel`, `cauchy`: the full "
        "[H, N, L] broadcast; `scan2d`: a Python loop over the grid's cells with autograd.",
        "- One torch thread: the per-step ops of the loops are too small to be split across "
        "threads anyway, and on a busy 2-core machine OpenMP's spinning makes multi-thread "
        "timings meaningless. With idle cores the fast paths' chunk-level ops use them "
        "(`--threads`).",
        "- Peak memory should grow linearly in L for the scans (saved inputs, chunk-start "
        "states, gradients) and stay nearly flat for `s4d_kernel` and `cauchy` (blocked over L).",
        "",
        "## GPU",
        "",
    ]
    if gpu_rows:
        parts += [
            "CUDA-event times (mean of repeated calls after warm-up): `fwd_s` without autograd, "
            "`fwd_bwd_s` forward plus `torch.autograd.grad` of every input; `peak_extra_mib`: "
            "peak CUDA allocation of one forward+backward above what was allocated before. "
            "Roofline fraction of the forward = max(bytes_min / bandwidth, flops / peak FP32) / "
            "fwd_s, bytes_min = the inputs read once and the output written once (selective_scan:"
            " u, delta, B, C, y), against the spec bandwidth and a measured device copy. "
            "`mamba_ssm`: the authors' CUDA kernel (`selective_scan_cuda`, built from the "
            "mamba-ssm sdist on the benchmark machine) when it is importable.",
            "",
            _table(gpu_rows, list(dict.fromkeys(k for r in gpu_rows for k in r))),
        ]
    else:
        parts.append("Not run: no CUDA device on the benchmark machine (the section runs "
                     "Triton vs torch vs torch.compile and roofline fractions when one is).")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", nargs="+", default=list(DEFAULT_LENGTHS),
                        choices=list(DEFAULT_LENGTHS))
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of (fast path, reference); 1 at L >= 16384")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of the fast path per round (best of)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a small shared machine, "
                             "OpenMP spinning against other jobs distorts multi-thread timings)")
    parser.add_argument("--memory-ref-max-length", type=int, default=4096,
                        help="also measure the references' peak memory up to this length")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory section")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--gpu-only", action="store_true",
                        help="only the GPU section (skip the CPU timings and peak memory)")
    parser.add_argument("--suffix", default="", help="suffix of the output file names")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    print(json.dumps(env))
    # memory first: its children are forked before this process runs any parallel torch region
    mem_rows = [] if args.no_memory or args.gpu_only else memory_section(args)
    cpu_rows = [] if args.gpu_only else cpu_section(args)
    gpu_rows = gpu_section(args)
    write_results(env, cpu_rows, mem_rows, gpu_rows, args.suffix)


if __name__ == "__main__":
    main()
