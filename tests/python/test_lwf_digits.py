"""The digits LwF example, short: kdloss and plain PyTorch train alike.

Two tasks, a few steps each (the second task's steps use the distillation
term); after every optimiser step the parameters of the two runs must agree
within TOL. The runs differ only in the distillation term, whose float32
results differ by rounding (within kdloss's contract), so the parameters
drift apart by rounding only.
"""
import sys

import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "examples"))
import lwf_digits  # noqa: E402

TOL = 1e-6  # max |parameter difference|, absolute; parameters are O(0.01 .. 1)
STEPS = 12


def trajectory(distill):
    params = []
    history, _, calls = lwf_digits.train(
        distill, tasks=2, steps=STEPS, on_step=lambda m: params.append(
            torch.cat([p.detach().flatten().clone() for p in m.parameters()])),
        report=lambda line: None)
    return params, history, calls


def test_kdloss_trains_as_pytorch():
    kd, kd_hist, kd_calls = trajectory("kdloss")
    pt, pt_hist, _ = trajectory("torch")
    assert len(kd) == len(pt) == 2 * STEPS and kd_calls == STEPS
    moved = (kd[-1] - kd[STEPS - 1]).abs().max().item()
    assert moved > 100 * TOL  # the distilled steps do change the parameters
    for step, (a, b) in enumerate(zip(kd, pt)):
        diff = (a - b).abs().max().item()
        assert diff <= TOL, f"step {step}: parameters differ by {diff:.3g} > {TOL}"
    assert len(kd_hist) == 2 and len(kd_hist[1]) == 2
