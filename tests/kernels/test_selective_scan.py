import pytest
import torch

from tsk.kernels import selective_scan


def _inputs(batch, channels, state, length, *, groups=None, optional=True, device="cpu",
            dtype=torch.float32, seed=0):
    """The scan's arguments; `optional` adds D, z, delta_bias and an initial state."""
    gen = torch.Generator().manual_seed(seed)
    bc_shape = (batch, state, length) if groups is None else (batch, groups, state, length)
    tensors = {
        "u": torch.randn(batch, channels, length, generator=gen, dtype=dtype),
        "delta": 0.5 * torch.rand(batch, channels, length, generator=gen, dtype=dtype),
        "A": -4 * torch.rand(channels, state, generator=gen, dtype=dtype),
        "B": torch.randn(*bc_shape, generator=gen, dtype=dtype),
        "C": torch.randn(*bc_shape, generator=gen, dtype=dtype),
        "D": torch.randn(channels, generator=gen, dtype=dtype) if optional else None,
        "z": torch.randn(batch, channels, length, generator=gen, dtype=dtype) if optional else None,
        "delta_bias": torch.randn(channels, generator=gen, dtype=dtype) - 1 if optional else None,
        "initial_state": (torch.randn(batch, channels, state, generator=gen, dtype=dtype)
                          if optional else None),
    }
    return {k: (v.to(device).requires_grad_() if v is not None else None)
            for k, v in tensors.items()}


def _run(inputs, backend, softplus, seed=1):
    y, last = selective_scan(**inputs, delta_softplus=softplus, output_final_state=True,
                             backend=backend)
    gen = torch.Generator().manual_seed(seed)
    w_y = torch.randn(y.shape, generator=gen).to(y)
    w_last = torch.randn(last.shape, generator=gen).to(last)
    wrt = [v for v in inputs.values() if v is not None]
    grads = torch.autograd.grad((y * w_y).sum() + (last * w_last).sum(), wrt)
    return y, last, grads


def _compare(inputs, backend, check, softplus=True, tol=1e-4):
    y_ref, last_ref, grads_ref = _run(inputs, "reference", softplus)
    y, last, grads = _run(inputs, backend, softplus)
    check(y, y_ref, tol, "y")
    check(last, last_ref, tol, "last state")
    names = [k for k, v in inputs.items() if v is not None]
    for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
        if not g_ref.any():  # e.g. grad A at L = 1 (h_{-1} = 0): no scale to be relative to
            assert g.abs().max() <= 1e-6, f"grad {name}: should be zero, got {g.abs().max():.3g}"
            continue
        check(g, g_ref, tol, f"grad {name}")


@pytest.mark.parametrize("length", [1, 7, 1000])
@pytest.mark.parametrize("groups", [None, 2])
def test_torch_matches_reference(length, groups, assert_rel_close):
    _compare(_inputs(2, 8, 4, length, groups=groups), "torch", assert_rel_close)


@pytest.mark.parametrize("softplus,optional", [(False, False), (True, False), (False, True)])
def test_torch_optional_arguments(softplus, optional, assert_rel_close):
    _compare(_inputs(1, 4, 3, 19, optional=optional), "torch", assert_rel_close, softplus)


def test_torch_grouped_one_group_per_channel_and_mixed(assert_rel_close):
    _compare(_inputs(2, 4, 3, 11, groups=4), "torch", assert_rel_close)
    inputs = _inputs(2, 4, 3, 11, groups=2)
    inputs["B"] = inputs["B"].detach()[:, 0].requires_grad_()  # ungrouped B, grouped C
    _compare(inputs, "torch", assert_rel_close)


def test_torch_long_sequence(assert_rel_close):
    # several chunks, batch 1, and the state over 4096 steps
    _compare(_inputs(1, 4, 4, 4096), "torch", assert_rel_close)


def test_torch_chunk_boundaries(monkeypatch, assert_rel_close):
    from tsk.kernels.selective_scan import eager as fast

    monkeypatch.setattr(fast, "_TARGET_CHUNK_ELEMENTS", 1)  # chunk length 4
    _compare(_inputs(2, 2, 3, 23), "torch", assert_rel_close)


def test_non_contiguous(assert_rel_close):
    inputs = _inputs(2, 4, 3, 9)
    inputs["u"] = inputs["u"].detach().transpose(1, 2).contiguous().transpose(1, 2)
    inputs["u"].requires_grad_()
    inputs["B"] = inputs["B"].detach().permute(2, 0, 1).contiguous().permute(1, 2, 0)
    inputs["B"].requires_grad_()
    inputs["A"] = inputs["A"].detach().t().contiguous().t().requires_grad_()
    assert not (inputs["u"].is_contiguous() or inputs["B"].is_contiguous())
    _compare(inputs, "torch", assert_rel_close)


def test_final_state_only_when_asked():
    inputs = _inputs(1, 2, 2, 5)
    y, final_state = selective_scan(**inputs)
    assert y.shape == (1, 2, 5) and final_state is None


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_scanning_in_pieces_from_the_final_state_equals_one_scan(backend, assert_rel_close):
    """What initial_state is for: a long sequence scanned in two calls, the second starting from
    the first's final state, gives the one-call outputs and final state."""
    _check_pieces(backend, "cpu", assert_rel_close)


@pytest.mark.triton
def test_triton_scanning_in_pieces(triton_device, assert_rel_close):
    _check_pieces("triton", triton_device, assert_rel_close)


def _check_pieces(backend, device, assert_rel_close):
    inputs = _inputs(2, 4, 3, 23, device=device)
    inputs["initial_state"] = None
    y_ref, last_ref, _ = _run(inputs, backend, softplus=True)
    split = 9
    first = {k: v[..., :split] if k in ("u", "delta", "z", "B", "C") else v
             for k, v in inputs.items()}
    second = {k: v[..., split:] if k in ("u", "delta", "z", "B", "C") else v
              for k, v in inputs.items()}
    y1, mid = selective_scan(**first, delta_softplus=True, output_final_state=True,
                             backend=backend)
    second["initial_state"] = mid
    y2, last = selective_scan(**second, delta_softplus=True, output_final_state=True,
                              backend=backend)
    assert_rel_close(torch.cat([y1, y2], -1), y_ref, 1e-5, "y")
    assert_rel_close(last, last_ref, 1e-5, "last state")


def test_deprecated_return_last_state_keeps_the_old_results():
    inputs = _inputs(1, 2, 2, 5)
    y_new, last_new = selective_scan(**inputs, output_final_state=True)
    with pytest.warns(DeprecationWarning, match="output_final_state"):
        y = selective_scan(**inputs, return_last_state=False)
    with pytest.warns(DeprecationWarning, match="output_final_state"):
        y_old, last_old = selective_scan(**inputs, return_last_state=True)
    assert isinstance(y, torch.Tensor) and torch.equal(y, y_new)
    assert torch.equal(y_old, y_new) and torch.equal(last_old, last_new)


def test_gradcheck_float64():
    inputs = _inputs(1, 2, 2, 6, dtype=torch.float64, groups=1)
    names = list(inputs)

    for backend in ("reference", "torch"):
        def fn(*args, backend=backend):
            y, last = selective_scan(**dict(zip(names, args, strict=True)), delta_softplus=True,
                                     output_final_state=True, backend=backend)
            return y, last

        assert torch.autograd.gradcheck(fn, list(inputs.values()))


def test_bfloat16_inputs_keep_dtype():
    inputs = {k: v.detach().bfloat16() for k, v in _inputs(1, 2, 2, 5).items()}
    y, _ = selective_scan(**inputs, delta_softplus=True)
    assert y.dtype == torch.bfloat16


def test_errors():
    inputs = _inputs(1, 4, 3, 5, groups=3, optional=False)
    with pytest.raises(ValueError, match="does not divide"):
        selective_scan(**inputs)
    inputs = _inputs(1, 4, 3, 5, optional=False)
    inputs["A"] = inputs["A"][:2]
    with pytest.raises(ValueError, match="A must have shape"):
        selective_scan(**inputs)
    inputs = _inputs(1, 4, 3, 5, optional=False)
    inputs["B"] = inputs["B"][0]
    with pytest.raises(ValueError, match=r"\[B, N, L\] or \[B, G, N, L\]"):
        selective_scan(**inputs)
    inputs = _inputs(1, 4, 3, 5)
    inputs["initial_state"] = inputs["initial_state"][..., :2]
    with pytest.raises(ValueError, match=r"initial_state must have shape \[1, 4, 3\]"):
        selective_scan(**inputs)


@pytest.mark.triton
@pytest.mark.parametrize("length,groups,softplus", [(1, None, True), (13, 2, True),
                                                    (9, None, False)])
def test_triton_matches_reference(length, groups, softplus, triton_device, assert_rel_close):
    inputs = _inputs(2, 4, 3, length, groups=groups, device=triton_device)
    _compare(inputs, "triton", assert_rel_close, softplus)


@pytest.mark.triton
def test_triton_several_chunks_and_odd_group_width(monkeypatch, triton_device, assert_rel_close):
    from tsk.kernels.selective_scan import triton as kernels

    monkeypatch.setattr(kernels, "_MAX_CHUNK", 4)
    inputs = _inputs(1, 6, 5, 11, groups=2, optional=False, device=triton_device)
    _compare(inputs, "triton", assert_rel_close)


@pytest.mark.triton
def test_triton_channel_blocks_shared_B_and_grouped_C(monkeypatch, triton_device, assert_rel_close):
    """Group width 4 (blocks of several channels), B shared by all groups while C is grouped,
    three chunks with a partial last one, every optional input."""
    from tsk.kernels.selective_scan import triton as kernels

    monkeypatch.setattr(kernels, "_MAX_CHUNK", 4)
    inputs = _inputs(2, 8, 3, 10, groups=2, device=triton_device)
    inputs["B"] = inputs["B"][:, 0].detach().clone().requires_grad_()
    _compare(inputs, "triton", assert_rel_close)
    _compare(inputs, "triton", assert_rel_close, softplus=False)
