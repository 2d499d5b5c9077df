"""kdloss.torch against the original pipeline in PyTorch float64, and its rules."""
import math
import threading

import pytest
import torch

from conftest import assert_contract, reference
import kdloss
from kdloss.torch import DistillationReg, distillation_loss


def logits(rows, cols, seed, scale=3.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(rows, cols, generator=g)).to(dtype)


def run(student, teacher, form="module", **p):
    """Loss and gradient (None when the student needs none) through autograd."""
    s = student.detach().clone().requires_grad_(student.requires_grad)
    if form == "module":
        loss = DistillationReg(p["factor"], p["temperature"], p["distance"])(s, teacher)
    else:
        loss = distillation_loss(s, teacher, **p)
    if s.requires_grad:
        loss.backward()
    return loss, s.grad


SHAPES = [(1, 1), (1, 2), (3, 7), (5, 17), (32, 100), (8, 1000)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 20.0])
def test_cross_entropy(shape, temperature):
    s, t = logits(*shape, 1), logits(*shape, 2)
    p = dict(factor=1.5, temperature=temperature, distance="cross_entropy")
    loss, grad = run(s.requires_grad_(), t, **p)
    assert loss.dtype == torch.float32 and loss.shape == () and grad.shape == shape
    assert_contract(loss, grad, *reference(s, t, **p), p["factor"], what=f"{shape} T={temperature}")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_mse(shape):
    s, t = logits(*shape, 3), logits(*shape, 4)
    p = dict(factor=0.7, temperature=2.0, distance="MSE")
    loss, grad = run(s.requires_grad_(), t, **p)
    assert_contract(loss, grad, *reference(s, t, **p), p["factor"], what=f"{shape}")


def test_vocabulary_rows():
    """The largest shape, once: 64 x 32000 (the functional form)."""
    s, t = logits(64, 32000, 5), logits(64, 32000, 6)
    p = dict(factor=1.0, temperature=2.0, distance="cross_entropy")
    loss, grad = run(s.requires_grad_(), t, form="functional", **p)
    assert_contract(loss, grad, *reference(s, t, **p), 1.0, what="64x32000")


@pytest.mark.parametrize("distance", ["cross_entropy", "MSE"])
def test_every_isa(distance):
    s, t = logits(6, 40, 7), logits(6, 40, 8)
    p = dict(factor=1.0, temperature=3.0, distance=distance)
    ref = reference(s, t, **p)
    try:
        for isa in kdloss.supported_isas():
            kdloss.set_isa(isa)
            assert kdloss.isa() == isa
            loss, grad = run(s.clone().requires_grad_(), t, **p)
            assert_contract(loss, grad, *ref, 1.0, what=isa)
    finally:
        kdloss.set_isa("auto")


def test_masked_classes():
    """-inf marks a masked cross-entropy class: probability 0, gradient 0."""
    s, t = logits(4, 30, 9), logits(4, 30, 10)
    s[:, 3] = -math.inf
    t[1, 5:9] = -math.inf
    p = dict(factor=1.0, temperature=2.0, distance="cross_entropy")
    loss, grad = run(s.requires_grad_(), t, **p)
    assert_contract(loss, grad, *reference(s, t, **p), 1.0, what="masked")
    assert torch.all(grad[:, 3] == 0)


@pytest.mark.parametrize("distance", ["cross_entropy", "MSE"])
def test_column_slices(distance):
    """A task head sliced out of wider logits (passed with its row stride), a
    transposed student and an expanded teacher (made contiguous)."""
    p = dict(factor=1.0, temperature=2.0, distance=distance)
    wide = logits(8, 50, 11).requires_grad_()
    t_wide = logits(8, 50, 12)
    s, t = wide[:, 10:30], t_wide[:, 5:25]
    assert s.stride() == (50, 1)
    loss = distillation_loss(s, t, **p)
    loss.backward()
    ref = reference(s, t, **p)
    assert_contract(loss, wide.grad[:, 10:30], *ref, 1.0, what="slice")
    assert torch.all(wide.grad[:, :10] == 0) and torch.all(wide.grad[:, 30:] == 0)

    st = logits(20, 8, 13).t().requires_grad_()  # 8 x 20, column stride 8
    te = logits(1, 20, 14).expand(8, 20)         # row stride 0
    loss = distillation_loss(st, te, **p)
    loss.backward()
    assert_contract(loss, st.grad, *reference(st, te, **p), 1.0, what="transposed")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtypes(dtype):
    """Computed in float32; the loss and gradient come back in the student's dtype."""
    for distance in ("cross_entropy", "MSE"):
        p = dict(factor=1.0, temperature=2.0, distance=distance)
        s, t = logits(4, 33, 15, dtype=dtype), logits(4, 33, 16, dtype=dtype)
        s32 = s.to(torch.float32)  # the values kdloss computes on (exact but for float64)
        loss, grad = run(s.requires_grad_(), t, **p)
        assert loss.dtype == dtype and grad.dtype == dtype
        assert_contract(loss, grad, *reference(s32, t, **p), 1.0, dtype, what=str(dtype))
    # a teacher of another dtype than the student's
    s, t = logits(4, 33, 17), logits(4, 33, 18, dtype=torch.float16)
    loss, grad = run(s.requires_grad_(), t, **p)
    assert loss.dtype == torch.float32
    assert_contract(loss, grad, *reference(s, t, **p), 1.0, what="teacher float16")


def test_forms_and_modes():
    """Functional == module; torch.no_grad() and a student without
    requires_grad give the loss alone (the loss-only call)."""
    s, t = logits(16, 64, 19), logits(16, 64, 20)
    p = dict(factor=2.0, temperature=4.0, distance="cross_entropy")
    ref = reference(s, t, **p)
    lm, gm = run(s.requires_grad_(), t, "module", **p)
    lf, gf = run(s, t, "functional", **p)
    assert torch.equal(lm, lf) and torch.equal(gm, gf)
    reg = DistillationReg(**p)
    with torch.no_grad():
        l0 = reg(s, t)
    l1 = reg(s.detach(), t)
    for loss in (l0, l1):
        assert loss.grad_fn is None and not loss.requires_grad
        assert_contract(loss, None, *ref, 2.0, what="loss only")
    with torch.no_grad():  # a teacher requiring grad is harmless where no gradient flows
        reg(s, t.clone().requires_grad_())


def test_autograd_chain():
    """backward scales by the incoming gradient; retain_graph keeps the saved
    gradient intact; the gradient flows on into a model."""
    s, t = logits(8, 20, 21), logits(8, 20, 22)
    p = dict(factor=1.0, temperature=2.0, distance="cross_entropy")
    _, ref_grad = reference(s, t, **p)
    ref_grad = torch.from_numpy(ref_grad)
    x = s.clone().requires_grad_()
    (3.0 * distillation_loss(x, t, **p)).backward()
    assert torch.allclose(x.grad.double(), 3 * ref_grad, rtol=0, atol=3e-5 * ref_grad.abs().max())
    x.grad = None
    loss = distillation_loss(x, t, **p)
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    assert torch.allclose(x.grad, 2 * first)
    lin = torch.nn.Linear(5, 20)
    inp = logits(8, 5, 23)
    distillation_loss(lin(inp), t, **p).backward()
    out = lin(inp).detach().requires_grad_()
    distillation_loss(out, t, **p).backward()
    assert torch.allclose(lin.weight.grad, out.grad.t() @ inp, atol=1e-6)


def test_double_backward_raises():
    s = logits(4, 10, 24).requires_grad_()
    loss = distillation_loss(s, logits(4, 10, 25), factor=1.0, temperature=2.0,
                             distance="cross_entropy")
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.autograd.grad(loss, s, create_graph=True)
    loss.backward()  # the graph is intact: first order still works


def test_module_attributes():
    reg = DistillationReg(0.5, 3.0, "MSE")
    assert (reg.factor, reg.temperature, reg.distance) == (0.5, 3.0, "MSE")
    assert repr(reg) == "DistillationReg(factor=0.5, temperature=3.0, distance='MSE')"
    assert list(reg.parameters()) == []
    reg.distance = "cross_entropy"  # attributes are read on every call
    s, t = logits(3, 9, 26), logits(3, 9, 27)
    with torch.no_grad():
        assert float(reg(s, t)) == float(distillation_loss(s, t, factor=0.5, temperature=3.0,
                                                           distance="cross_entropy"))


GOOD = dict(factor=1.0, temperature=2.0, distance="cross_entropy")
ERRORS = [
    # (student, teacher, parameters, exception, text in the message)
    ("list", lambda: [[1.0]], lambda: torch.ones(1, 1), {}, TypeError, "tensors"),
    ("1-D", lambda: torch.ones(5), lambda: torch.ones(5), {}, ValueError, "2-D"),
    ("3-D", lambda: torch.ones(2, 3, 4), lambda: torch.ones(2, 3, 4), {}, ValueError, "2-D"),
    ("shapes", lambda: torch.ones(2, 3), lambda: torch.ones(2, 4), {}, ValueError, "same shape"),
    ("empty batch", lambda: torch.ones(0, 3), lambda: torch.ones(0, 3), {}, ValueError, "empty"),
    ("no classes", lambda: torch.ones(3, 0), lambda: torch.ones(3, 0), {}, ValueError, "empty"),
    ("meta device", lambda: torch.ones(2, 3, device="meta"), lambda: torch.ones(2, 3), {},
     ValueError, "CPU"),
    ("int", lambda: torch.ones(2, 3, dtype=torch.int32), lambda: torch.ones(2, 3), {},
     TypeError, "float32"),
    ("complex", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3, dtype=torch.complex64), {},
     TypeError, "float32"),
    ("sparse", lambda: torch.ones(2, 3).to_sparse(), lambda: torch.ones(2, 3), {},
     TypeError, "dense"),
    ("distance", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"distance": "kl"},
     ValueError, "'cross_entropy', 'MSE'"),
    ("distance case", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"distance": "mse"},
     ValueError, "valid"),
    ("T zero", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"temperature": 0.0},
     ValueError, "temperature"),
    ("T negative", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"temperature": -1},
     ValueError, "temperature"),
    ("T nan", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"temperature": math.nan},
     ValueError, "temperature"),
    ("T inf", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"temperature": math.inf},
     ValueError, "temperature"),
    ("T subnormal", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"temperature": 1e-40},
     ValueError, "subnormal"),
    ("T str", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"temperature": "2"},
     TypeError, "real numbers"),
    ("factor nan", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"factor": math.nan},
     ValueError, "factor"),
    ("factor inf", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3), {"factor": -math.inf},
     ValueError, "factor"),
    ("teacher grad", lambda: torch.ones(2, 3), lambda: torch.ones(2, 3, requires_grad=True), {},
     ValueError, "detach"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("form", ["module", "functional"])
def test_argument_errors(case, form):
    _, make_s, make_t, over, exc, text = case
    p = {**GOOD, **over}
    s, t = make_s(), make_t()
    if isinstance(s, torch.Tensor) and s.dtype.is_floating_point and s.layout == torch.strided:
        s.requires_grad_()
    with pytest.raises(exc, match=text):
        if form == "module":
            DistillationReg(GOOD["factor"], GOOD["temperature"], GOOD["distance"])
            reg = DistillationReg.__new__(DistillationReg)
            torch.nn.Module.__init__(reg)
            reg.factor, reg.temperature, reg.distance = p["factor"], p["temperature"], \
                p["distance"]
            reg(s, t)
        else:
            distillation_loss(s, t, **p)
    if isinstance(s, torch.Tensor) and s.requires_grad:
        assert s.grad is None


def test_constructor_checks():
    with pytest.raises(ValueError, match="valid: 'cross_entropy', 'MSE'"):
        DistillationReg(1.0, 2.0, "KL")
    with pytest.raises(ValueError, match="temperature"):
        DistillationReg(1.0, 0.0, "MSE")


NONFINITE = "an input holds NaN or \\+inf, or a row is entirely -inf"


@pytest.mark.parametrize("distance,where,value", [
    ("cross_entropy", "student", math.nan), ("cross_entropy", "teacher", math.inf),
    ("cross_entropy", "row", -math.inf), ("MSE", "student", -math.inf),
    ("MSE", "teacher", math.nan)])
@pytest.mark.parametrize("grad", [True, False])
def test_nonfinite(distance, where, value, grad):
    s, t = logits(3, 5, 28), logits(3, 5, 29)
    if where == "row":
        s[1, :] = value
    else:
        (s if where == "student" else t)[2, 1] = value
    with pytest.raises(ValueError, match=NONFINITE):
        distillation_loss(s.requires_grad_(grad), t, factor=1.0, temperature=2.0,
                          distance=distance)


def test_threads():
    """Several Python threads at once give exactly the single-thread results."""
    p = dict(factor=1.0, temperature=2.0, distance="cross_entropy")
    inputs = [(logits(16, 300, 100 + i), logits(16, 300, 200 + i)) for i in range(8)]
    expect = [run(s.requires_grad_(), t, **p) for s, t in inputs]
    got, errors = [None] * len(inputs), []

    def work(k):
        try:
            for _ in range(20):
                got[k] = run(inputs[k][0], inputs[k][1], **p)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    for (l0, g0), (l1, g1) in zip(expect, got):
        assert torch.equal(l0, l1) and torch.equal(g0, g1)


@pytest.mark.parametrize("distance", ["cross_entropy", "MSE"])
def test_num_threads_same_bits(distance):
    """One and two library threads give the same bits, loss and gradient, on
    a shape the library splits into chunks (include/kdloss.h: 64 x 5000 is
    16 chunks, above the size run on the calling thread for both distances)."""
    s, t = logits(64, 5000, 11), logits(64, 5000, 12)
    p = dict(factor=1.5, temperature=2.0, distance=distance)
    before = kdloss.get_num_threads()
    got = {}
    try:
        for n in (1, 2):
            kdloss.set_num_threads(n)
            assert kdloss.get_num_threads() == n
            with torch.no_grad():
                alone = distillation_loss(s, t, **p)
            got[n] = (alone, *run(s.clone().requires_grad_(), t, **p))
    finally:
        kdloss.set_num_threads(before)
    assert kdloss.get_num_threads() == before
    (l1, lg1, g1), (l2, lg2, g2) = got[1], got[2]
    assert torch.equal(l1, l2) and torch.equal(lg1, lg2) and torch.equal(g1, g2)
    ref_loss, ref_grad = reference(s, t, **p)
    assert_contract(l2, None, ref_loss, None, p["factor"], what=f"{distance} 2 threads, loss")
    assert_contract(lg2, g2, ref_loss, ref_grad, p["factor"], what=f"{distance} 2 threads")
