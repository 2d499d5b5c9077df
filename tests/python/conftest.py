"""Shared by the Python tests: the PyTorch float64 reference and the contract.

The reference is tools/gen_golden.py's (the formulas the golden vectors come
from, each framework's PyTorch code: the LwF pipeline softmax, pow(1/T),
renormalise, + 1e-5, log, mean; F.mse_loss; PyCIL's, Avalanche's, Megatron's,
FACIL's, Liger's and iCaRL's), in float64 on the exact input values.
"""
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import gen_golden as gg  # noqa: E402

gg.torch = torch  # gen_golden imports torch in its main(); golden() uses it directly
torch.set_num_threads(1)  # meson runs the C suites alongside on a small machine

CODES = {"cross_entropy": gg.KD_CROSS_ENTROPY, "MSE": gg.KD_MSE,
         "soft_cross_entropy": gg.KD_SOFT_CROSS_ENTROPY, "kl_div": gg.KD_KL_DIV,
         "kl_div_reverse": gg.KD_KL_DIV_REVERSE,
         "cross_entropy_uniform_eps": gg.KD_CROSS_ENTROPY_UNIFORM_EPS, "jsd": gg.KD_JSD,
         "bce_sigmoid": gg.KD_BCE_SIGMOID}
REDUCTIONS = {"mean": gg.KD_REDUCE_MEAN, "sum": gg.KD_REDUCE_SUM}

# The C contract (include/kdloss.h), relative to float64 on the float32 inputs.
LOSS_REL, LOSS_FACTOR, GRAD_REL, GRAD_ABS = 1e-5, 1e-6, 1e-5, 1e-30
# Rounding of a float32 result to the returned dtype: (relative, absolute).
OUT_ROUNDING = {
    torch.float32: (0.0, 0.0),
    torch.float64: (0.0, 0.0),
    torch.float16: (2.0 ** -11, 2.0 ** -24),  # half an ulp; subnormal spacing
    torch.bfloat16: (2.0 ** -8, 0.0),
}


def reference(student, teacher, *, factor, temperature, distance, beta=0.5, reduction="mean",
              row_weight=None):
    """float64 loss and d loss / d student of the framework's formula."""
    s = student.detach().to(torch.float32).numpy()
    t = teacher.detach().to(torch.float32).numpy()
    red = gg.PLAIN
    if row_weight is not None or reduction != "mean" or distance not in ("cross_entropy", "MSE"):
        w = None if row_weight is None else row_weight.detach().to(torch.float32).numpy()
        red = gg.Reduce(w, REDUCTIONS[reduction], float(np.float32(beta)))
    loss, grad, _ = gg.golden(CODES[distance], s, t, float(np.float32(temperature)), factor, red)
    return loss, grad.reshape(s.shape)


def assert_contract(loss, grad, ref_loss, ref_grad, factor, dtype=torch.float32, what=""):
    """loss (0-d tensor) and grad (tensor or None) within the contract, widened
    by the rounding of the returned dtype; the message names the first
    mismatching index."""
    rel, abs_ = OUT_ROUNDING[dtype]
    got = float(loss)
    tol = LOSS_REL * abs(ref_loss) + LOSS_FACTOR * abs(factor) + rel * abs(ref_loss)
    assert abs(got - ref_loss) <= tol, f"{what}: loss {got!r} vs {ref_loss!r} (tol {tol:.3g})"
    if grad is None:
        return
    g = grad.detach().to(torch.float64).numpy()
    big = float(np.max(np.abs(ref_grad)))
    tol = GRAD_REL * big + GRAD_ABS + rel * big + abs_
    err = np.abs(g - ref_grad)
    if not err.max() <= tol:
        i = np.unravel_index(np.argmax(err > tol), err.shape)
        raise AssertionError(f"{what}: grad{list(i)} {g[i]!r} vs {ref_grad[i]!r} "
                             f"(max err {err.max():.3g}, tol {tol:.3g})")
