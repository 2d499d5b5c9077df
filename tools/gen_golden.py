#!/usr/bin/python3
"""Golden vectors for kdloss from the frameworks' own PyTorch formulas.

    /usr/bin/python3 tools/gen_golden.py [--out tests/data]

(Debian's python3-torch is installed for /usr/bin/python3 only.) Writes
<out>/golden.bin, the file tests/test_golden.c checks every ISA against; its
format is documented in tests/data/README.md and in write_case() below.

What the golden values are. For each case, from the float32 inputs stored in
the file, in float64, each distance's formula written as its framework's
PyTorch code computes it (FRAMEWORKS below):
  cross-entropy  the LwF pipeline: softmax over classes, pow(1/T),
                 renormalise, + 1e-5, log, teacher-weighted row sum, mean;
  MSE            DER's F.mse_loss(student, teacher);
  soft CE        PyCIL's _KD_loss: -(softmax(t/T) * log_softmax(s/T)).sum() / N;
  KL             Avalanche's and torchdistill's
                 F.kl_div(log_softmax(s/T), softmax(t/T), reduction="batchmean");
  reverse KL     Megatron's reverse option: the same with the roles swapped,
                 summed per row, mean over rows;
  uniform eps    FACIL's cross_entropy(exp=1/T): softmax, pow(1/T),
                 renormalise, + 1e-5/C, renormalise, -(r * log).sum(1).mean();
  JSD            Liger-Kernel's generalised JSD with weight beta
                 (lerp(q, r, beta) as M, KLDivLoss(log_target=True)), mean;
  BCE sigmoid    iCaRL's F.binary_cross_entropy_with_logits(s, sigmoid(t))
                 (Mammoth), and FACIL's sum over classes of per-class
                 F.binary_cross_entropy(sigmoid(s), sigmoid(t)) means;
times the framework's factor, and the gradient with respect to the student
through autograd. Row weights and KD_REDUCE_SUM (cases that have them) reduce
the per-row distances d_i of the same formula as Megatron's and Liger's
padding masks do: sum_i w_i d_i / sum_i w_i (0 when every weight is 0), or
sum_i w_i d_i; the per-row losses factor * w_i * d_i are golden too.

Where a literal formula is NaN in float64 (autograd through pow at p = 0,
Megatron's kl_div target or Liger's log M at an underflowed or masked class:
0 * -inf), an equal stable form gives the value instead, and the case is
flagged (FRAMEWORKS). FACIL's iCaRL term goes through sigmoid then log, which float32 saturates (log(1 -
sigmoid(s)) is -inf, clamped to -100, beyond |s| ~ 17): it is evaluated in
float64 on logits where that is exact, and its factor-C normalisation is
checked against KD_BCE_SIGMOID with factor C.

One exception, marked per case (flag GRAD_SOFTMAX_FORM): autograd through pow
is undefined where a student probability is exactly 0 and T != 1 (a masked
-inf class): d p^(1/T)/dp = (1/T) p^(1/T - 1) is +inf at p = 0 for T > 1, and
softmax's backward then multiplies it by p = 0, giving NaN for the whole row.
For such cases the gradient is taken through the equivalent form
softmax(x/T) (== softmax(x)^(1/T) renormalised), where the masked class has a
zero gradient, as the contract says. The loss is always the literal pipeline.

Every case also records PyTorch float32's own result: the same literal
pipeline run in float32 (loss, and gradient through autograd, NaN or not), so
its error against float64 can be reported. At high temperatures with widely
spread logits the float32 softmax underflows to 0 before pow(1/T) would have
lifted those classes back (gaps beyond ~104 in float32, against ~745 in
float64): float32 loses a real part of the loss there, and its gradient is
NaN. Cases "spread-*" exist for this; the float64 values stay exact because
every golden case keeps its logit gaps below 700.

Reproducible byte for byte: inputs come from splitmix64 (seeded per case,
the same generator as tests/tester.c), torch runs on one thread, and the file
is written with explicit little-endian packing.
"""
import argparse
import math
import os
import struct
import sys

import numpy as np

torch = None  # imported in main(): the sweep helpers below need numpy only

EPS = 1e-5
# enum kd_distance and enum kd_reduction (include/kdloss.h)
(KD_CROSS_ENTROPY, KD_MSE, KD_SOFT_CROSS_ENTROPY, KD_KL_DIV, KD_KL_DIV_REVERSE,
 KD_CROSS_ENTROPY_UNIFORM_EPS, KD_JSD, KD_BCE_SIGMOID) = range(8)
KD_REDUCE_MEAN, KD_REDUCE_SUM = 0, 1
# Distances over softmax(x/T): every logit gap must stay below 700.
SOFTMAX_DISTANCES = (KD_CROSS_ENTROPY, KD_SOFT_CROSS_ENTROPY, KD_KL_DIV, KD_KL_DIV_REVERSE,
                     KD_CROSS_ENTROPY_UNIFORM_EPS, KD_JSD)
MAGIC = b"KDGOLDEN"
VERSION = 2
NAME_BYTES = 40

# flags (u32, per case)
GRAD_SOFTMAX_FORM = 1 << 0   # float64 gradient via the stable form (softmax(x/T), not pow)
TORCH32_LOSS_NONFINITE = 1 << 1
TORCH32_GRAD_NONFINITE = 1 << 2
SAME_BUFFER = 1 << 3         # teacher == student: the test passes one buffer as both
ROW_WEIGHTS = 1 << 4         # f32 row_weight[rows] follows the arrays (else: NULL)
ROW_LOSS = 1 << 5            # f64 golden row_loss[rows] follows (and the weights)
LOSS_STABLE_FORM = 1 << 6    # float64 loss from the stable form too (JSD underflow)

# ---------------------------------------------------------------- generator
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(seed, n):
    """The first n outputs of splitmix64 from state seed (as tests/tester.c)."""
    with np.errstate(over="ignore"):
        k = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(seed) + k * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(seed, n):
    """[0, 1) doubles: the top 53 bits of each output."""
    return (splitmix64(seed, n) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def normal_pairs(seed, n):
    """n pairs (a, b) of N(0,1), each from two uniforms by Box-Muller, drawn in
    the order a(u, v), b(u, v) per element (tools/accuracy_report.c: same)."""
    u = uniform(seed, 4 * n).reshape(n, 4)
    a = np.sqrt(-2.0 * np.log(1.0 - u[:, 0])) * np.cos(6.283185307179586 * u[:, 1])
    b = np.sqrt(-2.0 * np.log(1.0 - u[:, 2])) * np.cos(6.283185307179586 * u[:, 3])
    return a, b


# ---------------------------------------------------------------- the sweep
# Shared with tools/accuracy_report.c (keep the two in step).
SWEEP_SHAPES = [(1, 10), (64, 100), (16, 1000), (4, 32000), (1, 128256)]
SWEEP_TEMPS = [0.1, 0.5, 1.0, 2.0, 4.0, 10.0, 100.0]
SWEEP_SCALES = [1.0, 5.0, 20.0, 50.0]


def sweep_seed(distance, shape_i, temp_i, scale_i):
    return 1000003 * (distance + 1) + 10007 * shape_i + 101 * temp_i + scale_i


def sweep_inputs(seed, rows, cols, scale):
    """student = scale*a, teacher = scale*b, a and b N(0,1), float32, dense."""
    a, b = normal_pairs(seed, rows * cols)
    s = (scale * a).astype(np.float32).reshape(rows, cols)
    t = (scale * b).astype(np.float32).reshape(rows, cols)
    return s, t


# ---------------------------------------------------------------- pipelines
def ce_literal(s, t, temperature, factor):
    """The LwF cross-entropy as the PyTorch code writes it (dtype of s, t)."""
    q = torch.softmax(s, dim=1).pow(1.0 / temperature)
    q = q / q.sum(dim=1, keepdim=True)
    r = torch.softmax(t, dim=1).pow(1.0 / temperature)
    r = r / r.sum(dim=1, keepdim=True)
    return -(r * torch.log(q + EPS)).sum(dim=1).mean() * factor


def ce_softmax_form(s, t, temperature, factor):
    """The same function written as softmax(x/T): equal in exact arithmetic."""
    q = torch.softmax(s / temperature, dim=1)
    r = torch.softmax(t / temperature, dim=1)
    return -(r * torch.log(q + EPS)).sum(dim=1).mean() * factor


def mse(s, t, temperature, factor):
    return torch.nn.functional.mse_loss(s, t) * factor


# Per-row distances d_i and the framework's own unweighted mean, each
# f(s, t, T, beta). Each is the framework's code with its reduction left out
# (rows) or kept (mean).
def ce_rows(s, t, T, beta, softmax_form=False):
    """LwF, per row; softmax_form: softmax(x/T) in place of pow (module text)."""
    if softmax_form:
        q, r = torch.softmax(s / T, dim=1), torch.softmax(t / T, dim=1)
    else:
        q = torch.softmax(s, dim=1).pow(1.0 / T)
        q = q / q.sum(dim=1, keepdim=True)
        r = torch.softmax(t, dim=1).pow(1.0 / T)
        r = r / r.sum(dim=1, keepdim=True)
    return -(r * torch.log(q + EPS)).sum(dim=1)


def mse_rows(s, t, T, beta):
    return ((s - t) ** 2).mean(dim=1)


def sce_pycil(s, t, T, beta, rows=False):
    """PyCIL's _KD_loss(pred, soft, T) (Mammoth's LwF after its temperature fix)."""
    pred = torch.log_softmax(s / T, dim=1)
    soft = torch.softmax(t / T, dim=1)
    if rows:
        return -1 * torch.mul(soft, pred).sum(dim=1)
    return -1 * torch.mul(soft, pred).sum() / pred.shape[0]


def kl_avalanche(s, t, T, beta, rows=False):
    """Avalanche's LwF and torchdistill's KDLoss (without its hard-label mix)."""
    log_p = torch.log_softmax(s / T, dim=1)
    q = torch.softmax(t / T, dim=1)
    if rows:
        return torch.nn.functional.kl_div(log_p, q, reduction="none").sum(dim=1)
    return torch.nn.functional.kl_div(log_p, q, reduction="batchmean")


def kl_reverse_megatron(s, t, T, beta, rows=False):
    """Megatron's LogitsKLLoss(reverse=True): KL(student || teacher) per token,
    then the mean over tokens."""
    d = torch.sum(torch.nn.functional.kl_div(torch.log_softmax(t / T, dim=-1),
                                             torch.softmax(s / T, dim=-1), reduction="none"),
                  dim=-1)
    return d if rows else d.mean()


def facil_ce(s, t, T, beta, rows=False, softmax_form=False):
    """FACIL's LwF cross_entropy(outputs, targets, exp=1/T, eps=1e-5);
    softmax_form: softmax(x/T) in place of pow (module text)."""
    exp = 1.0 / T
    if softmax_form:
        out, tar = torch.softmax(s / T, dim=1), torch.softmax(t / T, dim=1)
    else:
        out = torch.softmax(s, dim=1)
        tar = torch.softmax(t, dim=1)
        if exp != 1:
            out = out.pow(exp)
            out = out / out.sum(1).view(-1, 1).expand_as(out)
            tar = tar.pow(exp)
            tar = tar / tar.sum(1).view(-1, 1).expand_as(tar)
    out = out + EPS / out.size(1)
    out = out / out.sum(1).view(-1, 1).expand_as(out)
    ce = -(tar * out.log()).sum(1)
    return ce if rows else ce.mean()


def kl_log_target(input, target):
    """KLDivLoss(reduction="none", log_target=True), with 0 where target is
    -inf (PyTorch: 0 * -inf = NaN there)."""
    target0 = torch.where(torch.isinf(target), torch.zeros_like(target), target)
    return torch.exp(target) * (target0 - input)


def jsd_liger(s, t, T, beta, rows=False):
    """Liger-Kernel's LigerJSD(beta) on log_softmax(s/T), log_softmax(t/T)
    (GKD's generalised JSD): beta KL(r || M) + (1 - beta) KL(q || M)."""
    kl = torch.nn.KLDivLoss(reduction="none", log_target=True)
    log_q = torch.log_softmax(s / T, dim=1)
    log_p = torch.log_softmax(t / T, dim=1)
    m = torch.lerp(torch.exp(log_q), torch.exp(log_p), beta)
    log_m = torch.log(m)
    d = beta * kl(log_m, log_p).sum(dim=-1) + (1 - beta) * kl(log_m, log_q).sum(dim=-1)
    return d if rows else (d / log_q.shape[0]).sum()


def bce_icarl(s, t, T, beta, rows=False):
    """iCaRL's distillation in Mammoth and Avalanche:
    F.binary_cross_entropy_with_logits(outputs, sigmoid(old_outputs))."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    if rows:
        return bce(s, torch.sigmoid(t), reduction="none").mean(dim=1)
    return bce(s, torch.sigmoid(t))


def bce_facil(s, t, T, beta):
    """FACIL's iCaRL: sum over classes of F.binary_cross_entropy(sigmoid(s),
    sigmoid(t)) per-class means, C times bce_icarl's mean."""
    g, q = torch.sigmoid(t), torch.sigmoid(s)
    return sum(torch.nn.functional.binary_cross_entropy(q[:, y], g[:, y])
               for y in range(s.shape[1]))


def kl_reverse_stable(s, t, T, beta, rows=False):
    """Megatron's reverse KL as sum_j q_j (log q_j - log r_j) over
    log_softmax: where q_j underflows to 0 in float64 (T far below the logit
    gaps), autograd through kl_div's target gives 0 * -inf = NaN; here the
    term is 0 with a 0 gradient, the limit. A masked student class (log q =
    -inf) contributes 0."""
    log_q = torch.log_softmax(s / T, dim=-1)
    log_q0 = torch.where(torch.isinf(log_q), torch.zeros_like(log_q), log_q)
    d = (torch.exp(log_q) * (log_q0 - torch.log_softmax(t / T, dim=-1))).sum(dim=-1)
    return d if rows else d.mean()


def jsd_stable(s, t, T, beta, rows=False):
    """Liger's JSD with log M = logaddexp(log beta + log r, log(1 - beta) + log q)
    and 0 log 0 = 0: where both q_j and r_j underflow to 0 in float64,
    log(lerp(q, r, beta)) is -inf, and at a masked class KLDivLoss's
    exp(target) * (target - input) is 0 * -inf: the literal form is NaN
    there; this one gives the limit, 0."""
    log_q = torch.log_softmax(s / T, dim=1)
    log_p = torch.log_softmax(t / T, dim=1)
    log_m = torch.logaddexp(math.log(beta) + log_p, math.log1p(-beta) + log_q)
    d = beta * kl_log_target(log_m, log_p).sum(dim=-1) \
        + (1 - beta) * kl_log_target(log_m, log_q).sum(dim=-1)
    return d if rows else (d / log_q.shape[0]).sum()


def rows_of(fn):
    return lambda s, t, T, beta: fn(s, t, T, beta, rows=True)


# distance -> (per-row distances, the framework's unweighted mean, the
# equivalent stable form for where the literal one is NaN in float64: the
# gradient through pow at p = 0 (module text), and the underflows that
# kl_reverse_stable and jsd_stable describe)
FRAMEWORKS = {
    KD_CROSS_ENTROPY: (ce_rows, lambda s, t, T, beta: ce_literal(s, t, T, 1.0),
                       lambda s, t, T, beta, rows=False:
                       ce_rows(s, t, T, beta, True) if rows else
                       ce_rows(s, t, T, beta, True).mean()),
    KD_MSE: (mse_rows, lambda s, t, T, beta: mse(s, t, T, 1.0), None),
    KD_SOFT_CROSS_ENTROPY: (rows_of(sce_pycil), sce_pycil, None),
    KD_KL_DIV: (rows_of(kl_avalanche), kl_avalanche, None),
    KD_KL_DIV_REVERSE: (rows_of(kl_reverse_megatron), kl_reverse_megatron, kl_reverse_stable),
    KD_CROSS_ENTROPY_UNIFORM_EPS: (rows_of(facil_ce), facil_ce,
                                   lambda s, t, T, beta, rows=False:
                                   facil_ce(s, t, T, beta, rows, softmax_form=True)),
    KD_JSD: (rows_of(jsd_liger), jsd_liger, jsd_stable),
    KD_BCE_SIGMOID: (rows_of(bce_icarl), bce_icarl, None),
}


class Reduce:
    """How a case reduces: row weights (None: no weights), reduction, the
    framework's factor, and the formula for the unweighted mean when it is
    not the framework's default (FACIL's iCaRL)."""

    def __init__(self, weights=None, reduction=KD_REDUCE_MEAN, beta=0.5, mean_fn=None):
        self.weights, self.reduction, self.beta, self.mean_fn = weights, reduction, beta, mean_fn


PLAIN = Reduce()


def distance_loss(distance, red, softmax_form=False):
    """fn(s, t, T, factor) for loss_and_grad: the case's whole loss."""
    rows_fn, mean_fn, form_fn = FRAMEWORKS[distance]
    if softmax_form:
        rows_fn, mean_fn = rows_of(form_fn), form_fn
    mean_fn = red.mean_fn or mean_fn

    def fn(s, t, T, factor):
        if red.weights is None and red.reduction == KD_REDUCE_MEAN:
            return mean_fn(s, t, T, red.beta) * factor
        d = rows_fn(s, t, T, red.beta)
        if red.weights is None:
            return d.sum() * factor
        w = torch.from_numpy(red.weights).to(d.dtype)
        total = (w * d).sum()
        if red.reduction == KD_REDUCE_SUM:
            return total * factor
        # Megatron's and Liger's masked mean; every weight 0 gives 0.
        return total / (w.sum() if w.sum() > 0 else 1.0) * factor
    return fn


def row_losses(distance, s, t, T, factor, red):
    """float64 factor * w_i * d_i (w_i = 1 without weights)."""
    rows_fn, _, stable = FRAMEWORKS[distance]
    sd, td = torch.from_numpy(s).double(), torch.from_numpy(t).double()
    d = rows_fn(sd, td, T, red.beta).numpy()
    if not np.all(np.isfinite(d)):
        d = stable(sd, td, T, red.beta, rows=True).numpy()
    w = np.ones_like(d) if red.weights is None else red.weights.astype(np.float64)
    out = factor * w * d
    assert np.all(np.isfinite(out))
    return out


def loss_and_grad(fn, s, t, temperature, factor, dtype):
    """fn on copies of s, t in dtype; returns (loss, d loss / d student)."""
    sv = torch.from_numpy(s).to(dtype).requires_grad_(True)
    tv = torch.from_numpy(t).to(dtype)
    loss = fn(sv, tv, temperature, factor)
    loss.backward()
    return float(loss.item()), sv.grad.numpy().astype(np.float64)


def golden(distance, s, t, temperature, factor, red=PLAIN):
    """float64 loss and gradient (see the module text) and the flags."""
    flags = 0
    if distance == KD_MSE and red is PLAIN:
        loss, grad = loss_and_grad(mse, s, t, temperature, factor, torch.float64)
    elif distance == KD_CROSS_ENTROPY and red is PLAIN:
        loss, grad = loss_and_grad(ce_literal, s, t, temperature, factor, torch.float64)
    else:
        loss, grad = loss_and_grad(distance_loss(distance, red), s, t, temperature, factor,
                                   torch.float64)
    stable = FRAMEWORKS[distance][2]
    if not (math.isfinite(loss) and np.all(np.isfinite(grad))) and stable is not None:
        if distance in (KD_CROSS_ENTROPY, KD_CROSS_ENTROPY_UNIFORM_EPS):
            p = torch.softmax(torch.from_numpy(s).double(), dim=1).numpy()
            assert temperature != 1.0 and np.any(p == 0.0), "NaN gradient of another cause"
        if distance == KD_CROSS_ENTROPY and red is PLAIN:
            loss2, grad = loss_and_grad(ce_softmax_form, s, t, temperature, factor,
                                        torch.float64)
        else:
            loss2, grad = loss_and_grad(distance_loss(distance, red, softmax_form=True), s, t,
                                        temperature, factor, torch.float64)
        flags |= GRAD_SOFTMAX_FORM
        if not math.isfinite(loss):
            loss = loss2
            flags |= LOSS_STABLE_FORM
    assert math.isfinite(loss) and np.all(np.isfinite(grad))
    return loss, grad, flags


def torch32(distance, s, t, temperature, factor, red=PLAIN):
    if red is PLAIN and distance in (KD_CROSS_ENTROPY, KD_MSE):
        fn = mse if distance == KD_MSE else ce_literal
    else:
        fn = distance_loss(distance, red)
    return loss_and_grad(fn, s, t, temperature, factor, torch.float32)


# ---------------------------------------------------------------- the cases
class Case:
    """weights: None (NULL), "mixed" (0 to 3, a quarter 0), "padding" (0 or 1,
    as an ignore_index mask) or "zeros" (every weight 0). fw_factor: the
    framework's factor when kdloss's differs (FACIL's iCaRL: factor C)."""

    def __init__(self, name, distance, rows, cols, *, T=2.0, factor=1.0, ld=None,
                 scale=3.0, shift=0.0, kind="random", seed=1, beta=None, weights=None,
                 reduction=KD_REDUCE_MEAN, mean_fn=None, fw_factor=None, nan_padding=False):
        self.name, self.distance, self.rows, self.cols = name, distance, rows, cols
        self.T, self.factor = np.float32(T), np.float32(factor)
        self.fw_factor = self.factor if fw_factor is None else np.float32(fw_factor)
        self.ld = cols if ld is None else ld
        self.scale, self.shift, self.kind, self.seed = scale, shift, kind, seed
        # beta is stored only for KD_JSD (0 otherwise: the old reserved bytes)
        if beta is None:
            beta = 0.5 if distance == KD_JSD else 0.0
        self.beta = np.float32(beta)
        self.weights, self.reduction, self.mean_fn = weights, reduction, mean_fn
        self.nan_padding = nan_padding
        self.extended = distance not in (KD_CROSS_ENTROPY, KD_MSE) or weights is not None \
            or reduction != KD_REDUCE_MEAN

    def row_weights(self):
        """float32 rows weights, or None."""
        if self.weights is None:
            return None
        u = uniform((self.seed << 20) + 13, self.rows)
        if self.weights == "zeros":
            return np.zeros(self.rows, dtype=np.float32)
        if self.weights == "padding":
            w = (u >= 0.3).astype(np.float32)
            w[0] = 1.0  # one row kept
            return w
        w = np.where(u < 0.25, 0.0, 3.0 * u).astype(np.float32)
        w[0] = np.float32(1.5)
        return w

    def reduce(self):
        return Reduce(self.row_weights(), self.reduction, float(self.beta), self.mean_fn)


def make_inputs(c):
    """Dense rows x cols float32 student and teacher for case c."""
    n = c.rows * c.cols
    a, b = normal_pairs(c.seed, n)
    if c.kind == "spread":  # uniform in [-scale, scale]: every gap up to 2*scale
        u = uniform(c.seed ^ 0x5DEECE66D, 2 * n).reshape(2, n)
        a, b = 2.0 * u[0] - 1.0, 2.0 * u[1] - 1.0
    s = (c.scale * a + c.shift).astype(np.float32).reshape(c.rows, c.cols)
    t = (c.scale * b + c.shift).astype(np.float32).reshape(c.rows, c.cols)
    if c.kind in ("identical", "same-buffer"):
        t = s.copy()
    elif c.kind == "near":
        t = (c.scale * (a + 1e-3 * b) + c.shift).astype(np.float32).reshape(c.rows, c.cols)
    elif c.kind == "peaked":  # one class per row raised by 25: q_max near 1
        keep = (uniform((c.seed << 20) + 7, c.rows) * c.cols).astype(np.int64)
        s[np.arange(c.rows), keep] += np.float32(25.0)
        t[np.arange(c.rows), keep] += np.float32(25.0)
    elif c.kind in ("masked", "one-left", "masked-teacher", "masked-student",
                    "masked-disjoint"):
        # about a third of each row -inf, independently in student and
        # teacher ("one-left": all but one); one class per row always kept.
        # "masked-teacher"/"-student": only that one masked (a student class
        # masked where the teacher has mass makes KL infinite, and the
        # reverse); "masked-disjoint": never the same class in both.
        u = uniform((c.seed << 20) + 11, 2 * n + c.rows)
        keep = (u[2 * n:] * c.cols).astype(np.int64)
        ms = u[:n].reshape(c.rows, c.cols) < (1.0 if c.kind == "one-left" else 0.33)
        mt = u[n:2 * n].reshape(c.rows, c.cols) < (1.0 if c.kind == "one-left" else 0.33)
        ms[np.arange(c.rows), keep] = False
        mt[np.arange(c.rows), keep] = False
        if c.kind == "masked-teacher":
            ms[:] = False
        elif c.kind == "masked-student":
            mt[:] = False
        elif c.kind == "masked-disjoint":
            mt &= ~ms
        s[ms] = -np.inf
        t[mt] = -np.inf
    return s, t


def cases():
    CE, MSE = KD_CROSS_ENTROPY, KD_MSE
    out = []
    seed = [100]

    def add(name, distance, rows, cols, **kw):
        seed[0] += 1
        out.append(Case(name, distance, rows, cols, seed=seed[0], **kw))

    # Shapes from 1x1; temperatures 0.05 .. 100 at several logit scales.
    add("ce-1x1", CE, 1, 1)
    add("ce-1x1-T1", CE, 1, 1, T=1.0)
    add("ce-1x2", CE, 1, 2, T=0.5)
    for cols in (3, 16, 17, 33):
        add(f"ce-3x{cols}", CE, 3, cols)
    for T in (0.05, 0.5, 1.0, 2.0, 4.0, 10.0, 100.0):
        for scale in (0.1, 1.0, 5.0, 20.0):
            add(f"ce-4x100-T{T:g}-s{scale:g}", CE, 4, 100, T=T, scale=scale)
    for T in (0.5, 2.0, 10.0):
        add(f"ce-3x1000-T{T:g}", CE, 3, 1000, T=T, scale=3.0)
    add("ce-2x4097-T0.5", CE, 2, 4097, T=0.5, scale=3.0)
    add("ce-1x32000-T10", CE, 1, 32000, T=10.0, scale=3.0)
    add("ce-1x128256-T2", CE, 1, 128256, T=2.0, scale=3.0)
    add("ce-64x50", CE, 64, 50, T=2.0, scale=3.0)
    # Factors, including 0 and negative.
    for f in (0.0, -1.5, 1e-3, 1e4):
        add(f"ce-factor{f:g}", CE, 3, 77, factor=f)
    # Strides: ld > cols (the padding in the file is NaN and must not be read).
    for cols, pad in ((1, 1), (5, 3), (16, 16), (33, 7), (100, 1)):
        add(f"ce-ld-{cols}+{pad}", CE, 4, cols, ld=cols + pad)
    # -inf masks (never a whole row).
    for T in (0.5, 1.0, 2.0, 10.0):
        add(f"ce-masked-T{T:g}", CE, 5, 67, T=T, kind="masked")
    add("ce-one-left-T2", CE, 4, 40, T=2.0, kind="one-left")
    add("ce-masked-ld", CE, 3, 50, T=3.0, ld=57, kind="masked")
    # Large shifts: softmax ignores them, a kernel must too.
    for shift in (1000.0, -1000.0):
        add(f"ce-shift{shift:+g}", CE, 3, 100, shift=shift)
    add("ce-shift+1000-T0.05", CE, 2, 64, T=0.05, shift=1000.0, scale=1.0)
    # Identical inputs (loss = entropy + eps terms, small gradient), and the
    # same buffer passed as both; peaked rows (q_max near 1).
    for T in (0.5, 2.0):
        add(f"ce-identical-T{T:g}", CE, 3, 100, T=T, kind="identical")
    add("ce-same-buffer", CE, 2, 300, T=1.0, kind="same-buffer")
    add("ce-near", CE, 3, 100, T=2.0, kind="near")
    for T in (0.5, 2.0, 10.0):
        add(f"ce-peaked-T{T:g}", CE, 3, 100, T=T, kind="peaked")
    # Widely spread logits at high T: float32's softmax underflows (gaps past
    # ~104) before pow(1/T) would lift those classes; float64 does not (every
    # gap here is below 700).
    for T in (5.0, 10.0, 30.0, 100.0):
        add(f"ce-spread150-T{T:g}", CE, 4, 200, T=T, scale=150.0, kind="spread")
    add("ce-spread300-T100", CE, 2, 1000, T=100.0, scale=300.0, kind="spread")
    add("ce-spread60-T20", CE, 2, 2000, T=20.0, scale=60.0, kind="spread")

    # MSE.
    add("mse-1x1", MSE, 1, 1)
    for rows, cols in ((3, 77), (5, 1000), (1, 4097), (64, 10)):
        add(f"mse-{rows}x{cols}", MSE, rows, cols)
    for f in (0.0, -2.0, 1e-3, 1e4):
        add(f"mse-factor{f:g}", MSE, 3, 77, factor=f)
    add("mse-ld", MSE, 4, 33, ld=40)
    add("mse-identical", MSE, 3, 77, kind="identical")
    add("mse-same-buffer", MSE, 2, 50, kind="same-buffer")
    add("mse-near-shift1000", MSE, 3, 77, shift=1000.0, kind="near")
    add("mse-scale1e3", MSE, 2, 100, scale=1e3)

    # The framework distances (kd_loss_ex_f32), and row weights and
    # reductions for every distance. Appended: the cases above keep their
    # seeds and bytes.
    names = {KD_SOFT_CROSS_ENTROPY: "sce", KD_KL_DIV: "kl", KD_KL_DIV_REVERSE: "rkl",
             KD_CROSS_ENTROPY_UNIFORM_EPS: "facil", KD_JSD: "jsd"}
    masks = {KD_SOFT_CROSS_ENTROPY: "masked-teacher", KD_KL_DIV: "masked-teacher",
             KD_KL_DIV_REVERSE: "masked-student", KD_CROSS_ENTROPY_UNIFORM_EPS: "masked",
             KD_JSD: "masked-disjoint"}
    for D, p in names.items():
        add(f"{p}-1x1", D, 1, 1)
        add(f"{p}-1x2-T0.5", D, 1, 2, T=0.5)
        for cols in (3, 17, 33):
            add(f"{p}-3x{cols}", D, 3, cols)
        for T in (0.05, 0.5, 1.0, 2.0, 10.0, 100.0):
            for scale in (1.0, 5.0, 20.0):
                add(f"{p}-4x100-T{T:g}-s{scale:g}", D, 4, 100, T=T, scale=scale)
        add(f"{p}-3x1000-T2", D, 3, 1000, T=2.0)
        add(f"{p}-2x4097-T0.5", D, 2, 4097, T=0.5)
        for f in (0.0, -1.5, 1e4):
            add(f"{p}-factor{f:g}", D, 3, 77, factor=f)
        for cols, pad in ((1, 1), (33, 7)):
            add(f"{p}-ld-{cols}+{pad}", D, 4, cols, ld=cols + pad)
        for T in (0.5, 1.0, 2.0, 10.0):
            add(f"{p}-{masks[D]}-T{T:g}", D, 5, 67, T=T, kind=masks[D])
        add(f"{p}-shift+1000", D, 3, 100, shift=1000.0)
        for T in (0.5, 2.0):
            add(f"{p}-identical-T{T:g}", D, 3, 100, T=T, kind="identical")
        add(f"{p}-same-buffer", D, 2, 300, T=1.0, kind="same-buffer")
        add(f"{p}-near", D, 3, 100, T=2.0, kind="near")
        add(f"{p}-peaked-T0.5", D, 3, 100, T=0.5, kind="peaked")
        add(f"{p}-peaked-T2", D, 3, 100, T=2.0, kind="peaked")
        for T in (10.0, 100.0):
            add(f"{p}-spread150-T{T:g}", D, 4, 200, T=T, scale=150.0, kind="spread")
    for beta in (0.1, 0.9, 0.01):
        add(f"jsd-beta{beta:g}", KD_JSD, 4, 100, T=2.0, beta=beta)
        add(f"jsd-beta{beta:g}-masked", KD_JSD, 5, 67, T=1.0, beta=beta, kind="masked-disjoint")

    BCE = KD_BCE_SIGMOID
    add("bce-1x1", BCE, 1, 1)
    for rows, cols in ((3, 17), (3, 77), (5, 1000), (1, 4097), (64, 10)):
        add(f"bce-{rows}x{cols}", BCE, rows, cols)
    for f in (0.0, -2.0, 1e-3, 1e4):
        add(f"bce-factor{f:g}", BCE, 3, 77, factor=f)
    add("bce-ld", BCE, 4, 33, ld=40)
    add("bce-identical", BCE, 3, 77, kind="identical")
    add("bce-same-buffer", BCE, 2, 50, kind="same-buffer")
    add("bce-near", BCE, 3, 77, kind="near")
    for scale in (10.0, 30.0, 80.0):  # saturated sigmoids
        add(f"bce-scale{scale:g}", BCE, 3, 100, scale=scale)
    add("bce-shift+1000", BCE, 2, 50, shift=1000.0, scale=1.0)
    # FACIL's iCaRL term is KD_BCE_SIGMOID with factor C (module text).
    for rows, cols in ((4, 10), (32, 50), (3, 100)):
        add(f"bce-facil-{rows}x{cols}", BCE, rows, cols, factor=float(cols), fw_factor=1.0,
            mean_fn=bce_facil)

    # Row weights and reductions, every distance.
    for D, p in list(names.items()) + [(KD_CROSS_ENTROPY, "ce"), (KD_MSE, "mse"),
                                       (BCE, "bce")]:
        add(f"{p}-w-mixed", D, 9, 61, weights="mixed")
        add(f"{p}-w-padding", D, 8, 100, weights="padding", factor=0.5)
        add(f"{p}-w-zeros", D, 3, 40, weights="zeros")
        add(f"{p}-w-mixed-sum", D, 9, 61, weights="mixed", reduction=KD_REDUCE_SUM)
        add(f"{p}-sum", D, 5, 33, reduction=KD_REDUCE_SUM, factor=-0.25)
        add(f"{p}-w-mixed-ld", D, 6, 20, weights="mixed", ld=23, T=0.5)
    # Rows of weight 0 are never read: NaN there in the file (the golden
    # values come from the finite inputs, where those rows contribute 0).
    for D, p in list(names.items()) + [(KD_CROSS_ENTROPY, "ce"), (KD_MSE, "mse"),
                                       (BCE, "bce")]:
        add(f"{p}-w-padding-nan", D, 7, 45, weights="padding", nan_padding=True)
    return out


# ---------------------------------------------------------------- the file
def padded(x, ld):
    """rows x cols -> the (rows-1)*ld + cols floats a strided matrix spans,
    padding quiet NaN."""
    rows, cols = x.shape
    buf = np.full(rows * ld, np.nan, dtype="<f4")
    buf.reshape(rows, ld)[:, :cols] = x
    return buf[:(rows - 1) * ld + cols].tobytes()


def write_case(f, c, s, t, loss, grad, flags, t32_loss, t32_grad, weights, rloss):
    """Case header (112 bytes, little-endian), then the arrays:
        0  char[40] name, NUL-padded
       40  u32 distance (kd_distance)              44  u32 flags
       48  f32 factor                              52  f32 temperature
       56  u64 rows   64  u64 cols   72  u64 ld   80  u64 seed
       88  f64 loss (float64 golden)               96  f64 loss of PyTorch float32
      104  f32 beta (KD_JSD; else 0)              108  u32 reduction (kd_reduction)
      f32 student[(rows-1)*ld + cols], f32 teacher[same]  (padding: NaN)
      f64 grad[rows*cols]              (dense, float64 golden)
      f32 grad_torch32[rows*cols]      (dense, PyTorch float32)
      f32 row_weight[rows]             (flag ROW_WEIGHTS only)
      f64 row_loss[rows]               (flag ROW_LOSS only: float64 golden)"""
    name = c.name.encode()
    assert len(name) < NAME_BYTES
    f.write(name.ljust(NAME_BYTES, b"\0"))
    f.write(struct.pack("<IIffQQQQddfI", c.distance, flags, c.factor, c.T, c.rows, c.cols,
                        c.ld, c.seed, loss, t32_loss, c.beta, c.reduction))
    f.write(padded(s, c.ld))
    f.write(padded(t, c.ld))
    f.write(grad.astype("<f8").tobytes())
    f.write(t32_grad.astype("<f4").tobytes())
    if flags & ROW_WEIGHTS:
        f.write(weights.astype("<f4").tobytes())
    if flags & ROW_LOSS:
        f.write(rloss.astype("<f8").tobytes())


def main():
    global torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "data"))
    args = ap.parse_args()
    import torch as _torch
    torch = _torch
    torch.set_num_threads(1)

    all_cases = cases()
    path = os.path.join(args.out, "golden.bin")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<II", VERSION, len(all_cases)))
        for c in all_cases:
            s, t = make_inputs(c)
            for x in (s, t):
                assert np.all(np.isfinite(x.max(axis=1))) and not np.isnan(x).any()
                if c.distance in SOFTMAX_DISTANCES:
                    gaps = np.where(np.isfinite(x), x.max(axis=1, keepdims=True) - x, 0)
                    assert gaps.max() < 700, c.name  # float64 softmax stays normal
            red = c.reduce() if c.extended else PLAIN
            loss, grad, flags = golden(c.distance, s, t, float(c.T), float(c.fw_factor), red)
            t32_loss, t32_grad = torch32(c.distance, s, t, float(c.T), float(c.fw_factor), red)
            rloss = None
            if c.extended:
                rloss = row_losses(c.distance, s, t, float(c.T), float(c.factor), red)
                flags |= ROW_LOSS | (ROW_WEIGHTS if red.weights is not None else 0)
            if not math.isfinite(t32_loss):
                flags |= TORCH32_LOSS_NONFINITE
            if not np.all(np.isfinite(t32_grad)):
                flags |= TORCH32_GRAD_NONFINITE
            if c.kind == "same-buffer":
                flags |= SAME_BUFFER
            if c.nan_padding:
                s[red.weights == 0], t[red.weights == 0] = np.nan, np.nan
            write_case(f, c, s, t, loss, grad, flags, t32_loss, t32_grad, red.weights, rloss)
            l_err = abs(t32_loss - loss) / abs(loss) if loss else abs(t32_loss - loss)
            g_ref = np.max(np.abs(grad))
            g_err = np.max(np.abs(t32_grad - grad.reshape(t32_grad.shape))) / g_ref \
                if g_ref >= 1e-25 and np.all(np.isfinite(t32_grad)) else math.nan
            print(f"{c.name:28s} flags={flags:#x} loss={loss:<24.17g} torch32 loss "
                  f"{t32_loss:<14.9g} rel.err {l_err:.2e}  grad rel.err {g_err:.2e}")
    os.replace(tmp, path)
    print(f"{len(all_cases)} cases, {os.path.getsize(path)} bytes -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
