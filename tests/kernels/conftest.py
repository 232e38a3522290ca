"""Kernel test helpers. Triton kernels run in the interpreter when there is no GPU: the root
tests/conftest.py sets TRITON_INTERPRET before anything imports a `@triton.jit` function."""


import pytest
import torch


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().to(expected.device), expected.detach()
    if actual.is_complex() or expected.is_complex():
        actual, expected = actual.to(torch.complex128), expected.to(torch.complex128)
    else:
        actual, expected = actual.double(), expected.double()
    scale = expected.abs().max().item()
    return (actual - expected).abs().max().item() / max(scale, 1e-12)


@pytest.fixture
def assert_rel_close():
    """assert_rel_close(actual, expected, tol, name): max |a - e| / max |e| <= tol."""

    def check(actual, expected, tol=1e-4, name="value"):
        assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
        err = _rel_err(actual, expected)
        assert err <= tol, f"{name}: relative error {err:.3g} > {tol:.1g}"

    return check


def pytest_collection_modifyitems(items):
    # triton 3.6's interpreter trips numpy's scalar-conversion deprecation on every launch
    for item in items:
        if item.get_closest_marker("triton") is not None:
            item.add_marker(
                pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0")
            )
