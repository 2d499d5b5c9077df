"""kdloss.torch's framework distances, reductions and row weights against each
framework's PyTorch formula in float64 (tools/gen_golden.py), and their
argument errors."""
import math

import pytest
import torch

from conftest import assert_contract, reference
from kdloss.torch import DISTANCES, DistillationReg, distillation_loss

NEW = ["soft_cross_entropy", "kl_div", "kl_div_reverse", "cross_entropy_uniform_eps", "jsd",
       "bce_sigmoid"]


def logits(rows, cols, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(rows, cols, generator=g)


def run(student, teacher, form, row_weight=None, **p):
    """Loss and gradient through autograd, by the module or the functional form."""
    s = student.detach().clone().requires_grad_()
    if form == "module":
        opt = {k: p[k] for k in ("beta", "reduction") if k in p}
        reg = DistillationReg(p["factor"], p["temperature"], p["distance"], **opt)
        loss = reg(s, teacher, row_weight) if row_weight is not None else reg(s, teacher)
    else:
        loss = distillation_loss(s, teacher, row_weight=row_weight, **p)
    loss.backward()
    return loss, s.grad


def test_names():
    assert list(DISTANCES) == ["cross_entropy", "MSE"] + NEW


@pytest.mark.parametrize("distance", NEW)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, 17), (32, 100), (4, 1000)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("temperature", [0.5, 2.0, 20.0])
@pytest.mark.parametrize("form", ["module", "functional"])
def test_distance(distance, shape, temperature, form):
    s, t = logits(*shape, 1), logits(*shape, 2)
    p = dict(factor=1.5, temperature=temperature, distance=distance)
    loss, grad = run(s, t, form, **p)
    assert loss.dtype == torch.float32 and loss.shape == () and grad.shape == shape
    assert_contract(loss, grad, *reference(s, t, **p), p["factor"],
                    what=f"{distance} {shape} T={temperature}")


@pytest.mark.parametrize("beta", [0.01, 0.25, 0.5, 0.9])
def test_jsd_beta(beta):
    s, t = logits(8, 50, 3), logits(8, 50, 4)
    p = dict(factor=1.0, temperature=2.0, distance="jsd", beta=beta)
    for form in ("module", "functional"):
        loss, grad = run(s, t, form, **p)
        assert_contract(loss, grad, *reference(s, t, **p), 1.0, what=f"jsd beta={beta} {form}")


def test_beta_only_for_jsd():
    """beta is ignored by the other distances, any real value."""
    s, t = logits(3, 9, 5), logits(3, 9, 6)
    with torch.no_grad():
        a = distillation_loss(s, t, factor=1.0, temperature=2.0, distance="kl_div")
        b = distillation_loss(s, t, factor=1.0, temperature=2.0, distance="kl_div", beta=7.0)
    assert torch.equal(a, b)


WEIGHTS = {
    "mixed": lambda rows: torch.linspace(0.0, 3.0, rows),
    "padding": lambda rows: (torch.arange(rows) % 3 != 1).float(),
    "zeros": lambda rows: torch.zeros(rows),
    "float64": lambda rows: torch.linspace(0.5, 1.5, rows, dtype=torch.float64),
}


@pytest.mark.parametrize("distance", list(DISTANCES))
@pytest.mark.parametrize("weights", [None] + list(WEIGHTS))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_weights_and_reductions(distance, weights, reduction):
    s, t = logits(7, 30, 7), logits(7, 30, 8)
    w = None if weights is None else WEIGHTS[weights](7)
    p = dict(factor=-0.75, temperature=2.0, distance=distance, reduction=reduction)
    ref_loss, ref_grad = reference(s, t, row_weight=w, **p)
    for form in ("module", "functional"):
        loss, grad = run(s, t, form, row_weight=w, **p)
        assert_contract(loss, grad, ref_loss, ref_grad, p["factor"],
                        what=f"{distance} weights={weights} {reduction} {form}")
    if weights == "zeros" and reduction == "mean":  # a batch of padding: 0, not an error
        assert float(loss) == 0.0 and not grad.any()


def test_padding_rows_are_skipped():
    """A row of weight 0 contributes nothing, whatever its logits (NaN included):
    the masked mean of Megatron and Liger over the rows kept."""
    s, t = logits(6, 40, 9), logits(6, 40, 10)
    keep = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    s_pad = s.clone()
    s_pad[1] = math.nan
    p = dict(factor=1.0, temperature=2.0, distance="kl_div")
    loss, grad = run(s_pad, t, "functional", row_weight=keep, **p)
    rows = keep.bool()
    kept, kept_grad = run(s[rows], t[rows], "functional", **p)
    assert abs(float(loss) - float(kept)) <= 1e-6 * abs(float(kept))
    assert torch.allclose(grad[rows], kept_grad, rtol=1e-5, atol=1e-9)
    assert not grad[~rows].any()


@pytest.mark.parametrize("distance", ["soft_cross_entropy", "kl_div", "jsd",
                                      "cross_entropy_uniform_eps"])
def test_teacher_masks(distance):
    """A class the teacher masks (-inf) contributes 0 (0 log 0 = 0)."""
    s, t = logits(4, 20, 11), logits(4, 20, 12)
    t[:, ::3] = -math.inf
    p = dict(factor=1.0, temperature=2.0, distance=distance)
    loss, grad = run(s, t, "functional", **p)
    assert_contract(loss, grad, *reference(s, t, **p), 1.0, what=f"{distance} masked")


def test_student_mask_under_teacher_mass_is_infinite():
    """KL with a student class masked where the teacher has mass: +inf (kdloss.h)."""
    s, t = logits(2, 10, 13), logits(2, 10, 14)
    s[0, 3] = -math.inf
    with torch.no_grad():
        loss = distillation_loss(s, t, factor=1.0, temperature=2.0, distance="kl_div")
    assert loss == math.inf


def test_module_repr_and_attributes():
    reg = DistillationReg(1.0, 2.0, "jsd", beta=0.25, reduction="sum")
    assert repr(reg) == ("DistillationReg(factor=1.0, temperature=2.0, distance='jsd', "
                         "beta=0.25, reduction='sum')")
    s, t = logits(3, 9, 15), logits(3, 9, 16)
    reg.beta = 0.75  # read on every call
    with torch.no_grad():
        assert float(reg(s, t)) == float(distillation_loss(
            s, t, factor=1.0, temperature=2.0, distance="jsd", beta=0.75, reduction="sum"))


GOOD = dict(factor=1.0, temperature=2.0, distance="jsd")
ERRORS = [
    # (name, parameters, row_weight (rows = 2), exception, text in the message)
    ("beta 0", {"beta": 0.0}, None, ValueError, "0 < beta < 1"),
    ("beta 1", {"beta": 1.0}, None, ValueError, "0 < beta < 1"),
    ("beta negative", {"beta": -0.5}, None, ValueError, "0 < beta < 1"),
    ("beta nan", {"beta": math.nan}, None, ValueError, "0 < beta < 1"),
    ("beta str", {"beta": "0.5"}, None, TypeError, "real numbers"),
    ("reduction none", {"reduction": "none"}, None, ValueError, "'mean', 'sum'"),
    ("reduction batchmean", {"reduction": "batchmean"}, None, ValueError, "unknown reduction"),
    ("reduction int", {"reduction": 0}, None, ValueError, "unknown reduction"),
    ("weight negative", {}, torch.tensor([1.0, -1.0]), ValueError, "negative, NaN or infinite"),
    ("weight nan", {}, torch.tensor([math.nan, 1.0]), ValueError, "negative, NaN or infinite"),
    ("weight inf", {}, torch.tensor([1.0, math.inf]), ValueError, "negative, NaN or infinite"),
    ("weight length", {}, torch.ones(3), ValueError, "one weight per row"),
    ("weight 2-D", {}, torch.ones(2, 1), ValueError, "1-D"),
    ("weight list", {}, [1.0, 1.0], TypeError, "tensor or None"),
    ("weight int", {}, torch.ones(2, dtype=torch.int64), TypeError, "float"),
    ("weight grad", {}, torch.ones(2, requires_grad=True), ValueError, "detach"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("form", ["module", "functional"])
def test_argument_errors(case, form):
    _, over, w, exc, text = case
    p = {**GOOD, **over}
    s = torch.ones(2, 3, requires_grad=True)
    t = torch.zeros(2, 3)
    with pytest.raises(exc, match=text):
        if form == "module":
            reg = DistillationReg(GOOD["factor"], GOOD["temperature"], GOOD["distance"])
            for k, v in over.items():
                setattr(reg, k, v)
            reg(s, t, w)
        else:
            distillation_loss(s, t, row_weight=w, **p)
    assert s.grad is None


def test_constructor_checks():
    with pytest.raises(ValueError, match="0 < beta < 1"):
        DistillationReg(1.0, 2.0, "jsd", beta=1.5)
    with pytest.raises(ValueError, match="unknown reduction"):
        DistillationReg(1.0, 2.0, "kl_div", reduction="batchmean")
