"""The native CPU kernels (the LSTM scan; the cached samplers' pass), and when they are used.

``pixelrnn.nn.recurrence.lstm_scan`` runs the recurrence with :class:`NativeLSTMScan` (one C++
kernel per direction of the pass, ``lstm_scan.cpp``) when all of these hold, else with its
pure-PyTorch version:

- the environment variable ``PIXELRNN_NATIVE`` is not ``0`` (read at every call);
- the tensors are on the CPU, in float32 or float64, and ``torch.compile`` is not tracing;
- the library could be built and loaded (``build.py``: once per environment, ~20 s, cached).
  When it cannot be, a warning says why, once per process, and the PyTorch version is used.

Both give the same numbers up to float rounding (the tests compare them, and run the gradient,
causality and exactness tests on both). ``status()`` says which one runs and why.

The matrix products run inside the kernel, where ``torch.utils.flop_counter.FlopCounterMode``
cannot see them; the kernel's two ops are registered with the counter instead, each counting
exactly the products it performs (``2 x pixels x k*h x 4h`` per product: one in the forward
op, two in the backward op).

The same library holds the cached samplers' wavefront pass and value draw (``sampling.cpp``,
used by ``pixelrnn.sampling.native_pass`` and ``chooser.draw`` under the same conditions, with
``threads_for`` threads). They call the same tensor operations as the Python pass on blocks of
rows, so their numbers equal it exactly (tested), and FlopCounterMode does not see their products.
"""
from __future__ import annotations

import os
import threading
import warnings

import torch
from torch.utils.flop_counter import flop_registry, register_flop_formula

from . import build

_lock = threading.Lock()
_state: dict = {"tried": False, "error": None, "path": None}


def _flops_forward(pre_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    D, H, W, N, _ = pre_shape
    return 2 * D * H * W * N * weight_shape[1] * weight_shape[2]


def _flops_backward(grad_shape, grad_c_shape, weight_shape, u_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * 2 * u_shape[0] * u_shape[1] * weight_shape[2]  # dA W^T per step, and U^T dA


def _register_flops() -> None:
    """Tell FlopCounterMode what the two ops compute (a counter created before this sees none)."""
    ops = torch.ops.pixelrnn_native
    for op, formula in ((ops.scan_forward, _flops_forward), (ops.scan_backward, _flops_backward)):
        if op not in flop_registry:  # registered once per process
            register_flop_formula(op)(formula)


def available() -> bool:
    """Build and load the kernel on the first call; whether it can be used (see ``status``)."""
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                _state["path"] = build.load()
                _register_flops()
            except build.BuildError as e:
                _state["error"] = str(e)
                warnings.warn(f"pixelrnn: the native LSTM kernel is not available ({e}); using the "
                              "PyTorch version (PIXELRNN_NATIVE=0 skips the build)", RuntimeWarning,
                              stacklevel=3)
    return _state["path"] is not None


def library_path() -> str | None:
    """The loaded library's file (None until ``available()`` succeeded)."""
    return _state["path"]


def enabled() -> bool:
    return os.environ.get("PIXELRNN_NATIVE", "1") != "0"


def usable_for(pre: torch.Tensor) -> bool:
    """Whether ``lstm_scan`` runs the native kernel on this (already float32/64) input."""
    return (enabled() and pre.device.type == "cpu" and pre.dtype in (torch.float32, torch.float64)
            and not torch.compiler.is_compiling() and available())


def status() -> str:
    """One line: which version of the scan runs on the CPU, and why."""
    if not enabled():
        return "pure PyTorch (PIXELRNN_NATIVE=0)"
    if not available():
        return f"pure PyTorch (native kernel unavailable: {_state['error']})"
    threads = torch.get_num_threads()
    how = "chunks on OpenMP threads" if build.uses_openmp() else "no OpenMP: chunks in sequence"
    return f"native kernel ({torch.backends.cpu.get_cpu_capability()}, {threads} threads, {how})"


def chunks_for(D: int, N: int) -> int:
    """Into how many parts each direction's batch is cut: one (direction, part) per thread."""
    if not build.uses_openmp():
        return 1
    threads = torch.get_num_threads()
    return max(1, min(N, -(-threads // D)))


def sampling_usable(t: torch.Tensor) -> bool:
    """Whether a sampler's wavefront pass on tensors like ``t`` runs natively: ``usable_for``, and
    torch's CPU library exports the BLAS the pass calls (it does in the PyPI builds)."""
    if not usable_for(t):
        return False
    if "blas" not in _state:
        _state["blas"] = bool(torch.ops.pixelrnn_native.sampling_blas())
    return _state["blas"]


def threads_for(blocks: int) -> int:
    """On how many threads a sampler's native pass runs ``blocks`` independent blocks of rows
    (``sampling.cpp``): one block per thread, at most torch's thread count."""
    if not build.uses_openmp():
        return 1
    return max(1, min(blocks, torch.get_num_threads()))


class NativeLSTMScan(torch.autograd.Function):
    """``lstm_scan`` on the native kernel:
    (pre, weight, bias, h0, c0, kind, chunks, mirror) -> (h (D, H, W, N, h), c_last).
    pre (D, H, W, N, 4h) with contiguous features, in any dense layout (its gradient comes back in
    the same layout); weight (D, k*h, 4h), bias (D, 4h), contiguous, float32 or float64. Rows
    (kind 0): h0, c0 (D, W, N, h) contiguous, the state of row -1; c_last (D, W, N, h) the last
    row's cell states. Diagonals (kind 1): h0 (D, W, N, h) the hidden states of the row above
    (image coordinates), or empty for zeros; c0 and c_last empty. The gradients of h0 (when
    given) and c0 (rows) are returned; ``mirror``: bit d set runs direction d right to left."""

    @staticmethod
    def forward(ctx, pre, weight, bias, h0, c0, kind: int, chunks: int, mirror: int):
        out, U, A, C, c_last = torch.ops.pixelrnn_native.scan_forward(pre, weight, bias, h0, c0, kind, chunks,
                                                                       mirror)
        ctx.save_for_backward(weight, U, A, C, c0)
        ctx.args = (kind, chunks, mirror, h0.numel() > 0, list(pre.stride()))
        if c_last.numel() == 0:
            ctx.mark_non_differentiable(c_last)
        return out, c_last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h, grad_c):
        weight, U, A, C, c0 = ctx.saved_tensors  # unpacked once (activation checkpointing)
        grad_c = weight.new_empty(0) if grad_c is None else grad_c.to(weight.dtype).contiguous()
        dpre, dw, db, dh0, dc0 = torch.ops.pixelrnn_native.scan_backward(
            grad_h.to(weight.dtype).contiguous(), grad_c, weight, U, A, C, c0, *ctx.args)
        row, top = ctx.args[0] == 0, ctx.args[3]
        return dpre, dw, db, dh0 if row or top else None, dc0 if row else None, None, None, None
