import importlib

import pytest
import torch

from tests.conftest import require_tested_triton
from tsk.kernels.common.dispatch import fft_size, resolve_backend

OPS = ["cauchy", "companion_kernel", "fftconv", "linear_scan", "lstm_scan", "s4d_kernel",
       "scan2d", "selective_scan"]
NO_TRITON = {"companion_kernel"}  # a few small FFTs, no batch dimension: no fused path


def test_public_entry_points_only():
    import tsk.kernels

    assert sorted(tsk.kernels.__all__) == OPS
    for name in OPS:
        assert callable(getattr(tsk.kernels, name))


def test_every_op_is_a_folder_named_after_it_with_its_paths():
    from pathlib import Path

    import tsk.kernels

    root = Path(tsk.kernels.__file__).parent
    for op in OPS:
        files = {p.name for p in (root / op).glob("*.py")}
        assert {"__init__.py", "reference.py", "eager.py"} <= files, op
        assert "torch.py" not in files  # it would shadow the torch package inside the folder
        assert ("triton.py" in files) == (op not in NO_TRITON), op


def test_auto_picks_torch_on_cpu():
    assert resolve_backend("auto", torch.zeros(1), None) == "torch"
    assert resolve_backend("reference", torch.zeros(1)) == "reference"


def test_unknown_backend_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'triton'"):
        resolve_backend("trition", torch.zeros(1))


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    require_tested_triton()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        resolve_backend("triton", torch.zeros(1))


@pytest.mark.triton
@pytest.mark.parametrize("op", [op for op in OPS if op not in NO_TRITON])
def test_triton_kernels_are_interpreted_on_cpu(op, triton_device):
    from triton.runtime import Autotuner

    module = importlib.import_module(f"tsk.kernels.{op}.triton")
    kernels = [obj for name, obj in vars(module).items() if name.endswith("_kernel")]
    kernels = [k.fn if isinstance(k, Autotuner) else k for k in kernels]
    assert kernels, f"no Triton kernels found in tsk.kernels.{op}.triton"
    if triton_device.type == "cpu":
        assert all(type(k).__name__ == "InterpretedFunction" for k in kernels)


@pytest.mark.parametrize("n", [1, 2, 7, 399, 671, 861, 2109])
def test_fft_size_is_even_smooth_and_long_enough(n):
    size = fft_size(n)
    assert size >= n and size % 2 == 0
    odd = size
    for prime in (2, 3, 5, 7, 11):
        while odd % prime == 0:
            odd //= prime
    assert odd == 1, size


def test_fft_size_avoids_large_primes_and_odd_lengths():
    assert fft_size(861) == 864  # 2L would be 862 = 2 x 431
    assert fft_size(671) == 672  # scipy's real=True length would be the odd 675
