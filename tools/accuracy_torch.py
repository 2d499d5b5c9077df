#!/usr/bin/python3
"""PyTorch float32's own accuracy against float64, on the sweep of
tools/accuracy_report.c (same shapes, temperatures, scales, seeds and inputs).

    /usr/bin/python3 tools/accuracy_torch.py

Prints markdown table rows in the format of accuracy_report, so the two can be
pasted together:
  PyTorch float32, literal   the LwF pipeline as the PyTorch code writes it
                             (softmax, pow(1/T), renormalise, + 1e-5, log, ...),
                             loss and autograd gradient, in float32;
  PyTorch float32, x/T form  the same function as softmax(x/T), in float32
                             (for context: how much is the pipeline's, not
                             float32's);
against the float64 literal pipeline (tools/gen_golden.py's golden()). Errors
are those of accuracy_report: |loss - ref| / |ref| and
max|grad - ref| / max|ref|, the gradient ranked only where 1e-5 max|ref| >=
1e-30. A NaN or infinite result is counted (and ranks as the largest error),
then a per-temperature table of the literal pipeline shows where it fails.

Then the other distances, one row each: PyTorch float32 running the
framework's formula (tools/gen_golden.py's FRAMEWORKS: PyCIL, Avalanche,
Megatron, FACIL, Liger with beta 0.5, iCaRL) against the same formula in
float64, on the same sweep (BCE, which takes no temperature: shapes x
{independent, near} x scales, as MSE).
"""
import math
import statistics

import numpy as np
import torch

import gen_golden as gg

GRAD_REL, GRAD_ABS = 1e-5, 1e-30
LOSS_REL, LOSS_ABS = 1e-5, 1e-6


def rel(x, ref):
    return abs(x - ref) / abs(ref) if math.isfinite(x) else math.inf


def grad_rel(g, ref):
    if not np.all(np.isfinite(g)):
        return math.inf
    return float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))


def cell(errs):
    e = sorted(errs)
    bad = sum(1 for x in e if not math.isfinite(x))
    med = statistics.median(e)
    fmt = lambda x: f"{x:.2e}" if math.isfinite(x) else "NaN/inf"
    mx = fmt(e[-1]) if not bad else f"{fmt(max([x for x in e if math.isfinite(x)], default=math.nan))} + {bad} NaN/inf"
    return f" {mx} | {fmt(med)} |"


def main():
    torch.set_num_threads(1)
    gg.torch = torch
    rows = {"literal": {k: [] for k in ("cl", "cg", "ml", "mg")},
            "x/T form": {k: [] for k in ("cl", "cg", "ml", "mg")}}
    per_t = {T: {"loss": [], "nan_loss": 0, "nan_grad": 0, "n": 0} for T in gg.SWEEP_TEMPS}
    n_ce = n_mse = 0
    for i, (r, c) in enumerate(gg.SWEEP_SHAPES):
        for k, scale in enumerate(gg.SWEEP_SCALES):
            for j, T in enumerate(gg.SWEEP_TEMPS):
                T = float(np.float32(T))
                s, t = gg.sweep_inputs(gg.sweep_seed(gg.KD_CROSS_ENTROPY, i, j, k), r, c, scale)
                ref, ref_g, _ = gg.golden(gg.KD_CROSS_ENTROPY, s, t, T, 1.0)
                rank = GRAD_REL * np.max(np.abs(ref_g)) >= GRAD_ABS
                n_ce += 1
                for name, fn in (("literal", gg.ce_literal), ("x/T form", gg.ce_softmax_form)):
                    l32, g32 = gg.loss_and_grad(fn, s, t, T, 1.0, torch.float32)
                    rows[name]["cl"].append(rel(l32, ref))
                    if rank:
                        rows[name]["cg"].append(grad_rel(g32, ref_g))
                    if name == "literal":
                        p = per_t[gg.SWEEP_TEMPS[j]]
                        p["n"] += 1
                        p["loss"].append(rel(l32, ref))
                        p["nan_loss"] += not math.isfinite(l32)
                        p["nan_grad"] += not np.all(np.isfinite(g32))
            for kind in range(2):  # MSE: independent, near (as accuracy_report.c)
                a, b = gg.normal_pairs(gg.sweep_seed(gg.KD_MSE, i, kind, k), r * c)
                s = (scale * a).astype(np.float32).reshape(r, c)
                t = (scale * (a + 1e-3 * b) if kind else scale * b).astype(np.float32).reshape(r, c)
                ref, ref_g, _ = gg.golden(gg.KD_MSE, s, t, 1.0, 1.0)
                n_mse += 1
                l32, g32 = gg.loss_and_grad(gg.mse, s, t, 1.0, 1.0, torch.float32)
                for name in rows:
                    rows[name]["ml"].append(rel(l32, ref))
                    rows[name]["mg"].append(grad_rel(g32, ref_g))

    print(f"PyTorch {torch.__version__} float32 against the float64 literal pipeline: "
          f"{n_ce} cross-entropy cases, {n_mse} MSE cases (the sweep of accuracy_report)\n")
    print("| implementation | CE loss max | CE loss median | CE grad max | CE grad median "
          "| MSE loss max | MSE loss median | MSE grad max | MSE grad median |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| PyTorch float32, {name} |" + "".join(cell(r[k]) for k in ("cl", "cg", "ml", "mg")))
    print(f"\n({n_ce - len(rows['literal']['cg'])} cross-entropy cases with a reference gradient "
          "below 1e-25 everywhere are left out of the gradient columns.)\n")
    print("PyTorch float32, literal pipeline, cross-entropy by temperature "
          f"({len(gg.SWEEP_SHAPES) * len(gg.SWEEP_SCALES)} cases each: shapes x scales):\n")
    print("| T | loss rel. error max | loss rel. error median | NaN/inf loss | NaN/inf gradient |")
    print("|---|---|---|---|---|")
    for T, p in per_t.items():
        e = [x for x in p["loss"] if math.isfinite(x)]
        mx = f"{max(e):.2e}" if e else "-"
        md = statistics.median(sorted(p["loss"]))
        md = f"{md:.2e}" if math.isfinite(md) else "NaN/inf"
        print(f"| {T:g} | {mx} | {md} | {p['nan_loss']}/{p['n']} | {p['nan_grad']}/{p['n']} |")


FAMILY = [("soft_ce", gg.KD_SOFT_CROSS_ENTROPY), ("kl", gg.KD_KL_DIV),
          ("kl_reverse", gg.KD_KL_DIV_REVERSE), ("ce_uniform_eps", gg.KD_CROSS_ENTROPY_UNIFORM_EPS),
          ("jsd", gg.KD_JSD), ("bce_sigmoid", gg.KD_BCE_SIGMOID)]
JSD_BETA = 0.5


def family_inputs(code, i, j, k, r, c, scale):
    """The sweep's inputs of accuracy_report.c for the other distances."""
    if code != gg.KD_BCE_SIGMOID:
        return gg.sweep_inputs(gg.sweep_seed(code, i, j, k), r, c, scale)
    a, b = gg.normal_pairs(gg.sweep_seed(code, i, j, k), r * c)
    s = (scale * a).astype(np.float32).reshape(r, c)
    t = (scale * (a + 1e-3 * b) if j else scale * b).astype(np.float32).reshape(r, c)
    return s, t


def family():
    print("\nThe other distances: PyTorch float32 running the framework's formula against "
          "the same formula in float64 (the sweep of accuracy_report)\n")
    print("| distance | implementation | cases | loss max | loss median | grad max | grad median |")
    print("|---|---|---|---|---|---|---|")
    red = gg.Reduce(beta=JSD_BETA)
    for name, code in FAMILY:
        temps = range(2) if code == gg.KD_BCE_SIGMOID else range(len(gg.SWEEP_TEMPS))
        loss, grad, n = [], [], 0
        for i, (r, c) in enumerate(gg.SWEEP_SHAPES):
            for k, scale in enumerate(gg.SWEEP_SCALES):
                for j in temps:
                    T = 1.0 if code == gg.KD_BCE_SIGMOID else float(np.float32(gg.SWEEP_TEMPS[j]))
                    s, t = family_inputs(code, i, j, k, r, c, scale)
                    ref, ref_g, _ = gg.golden(code, s, t, T, 1.0, red)
                    l32, g32 = gg.torch32(code, s, t, T, 1.0, red)
                    n += 1
                    # relative errors where the bound's relative term binds (|ref| >= 0.1)
                    if LOSS_REL * abs(ref) >= LOSS_ABS:
                        loss.append(rel(l32, ref))
                    if GRAD_REL * np.max(np.abs(ref_g)) >= GRAD_ABS:
                        grad.append(grad_rel(g32, ref_g))
        print(f"| {name} | PyTorch float32 | {n} |" + cell(loss) + cell(grad), flush=True)


if __name__ == "__main__":
    main()
    family()
