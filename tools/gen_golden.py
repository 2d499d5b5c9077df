#!/usr/bin/python3
"""Golden vectors for kdloss from the original PyTorch pipeline.

    /usr/bin/python3 tools/gen_golden.py [--out tests/data]

(Debian's python3-torch is installed for /usr/bin/python3 only.) Writes
<out>/golden.bin, the file tests/test_golden.c checks every ISA against; its
format is documented in tests/data/README.md and in write_case() below.

What the golden values are. For each case, from the float32 inputs stored in
the file, in float64:
  cross-entropy  the LwF pipeline literally as the PyTorch code states it:
                 softmax over classes, pow(1/T), renormalise, + 1e-5, log,
                 teacher-weighted row sum, mean over rows, times factor;
  MSE            F.mse_loss(student, teacher) * factor;
and the gradient with respect to the student through autograd.

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
KD_CROSS_ENTROPY, KD_MSE = 0, 1
MAGIC = b"KDGOLDEN"
VERSION = 1
NAME_BYTES = 40

# flags (u32, per case)
GRAD_SOFTMAX_FORM = 1 << 0   # float64 gradient via softmax(x/T), not through pow
TORCH32_LOSS_NONFINITE = 1 << 1
TORCH32_GRAD_NONFINITE = 1 << 2
SAME_BUFFER = 1 << 3         # teacher == student: the test passes one buffer as both

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


def loss_and_grad(fn, s, t, temperature, factor, dtype):
    """fn on copies of s, t in dtype; returns (loss, d loss / d student)."""
    sv = torch.from_numpy(s).to(dtype).requires_grad_(True)
    tv = torch.from_numpy(t).to(dtype)
    loss = fn(sv, tv, temperature, factor)
    loss.backward()
    return float(loss.item()), sv.grad.numpy().astype(np.float64)


def golden(distance, s, t, temperature, factor):
    """float64 loss and gradient (see the module text) and the flags."""
    flags = 0
    if distance == KD_MSE:
        loss, grad = loss_and_grad(mse, s, t, temperature, factor, torch.float64)
    else:
        loss, grad = loss_and_grad(ce_literal, s, t, temperature, factor, torch.float64)
        if not np.all(np.isfinite(grad)):
            p = torch.softmax(torch.from_numpy(s).double(), dim=1).numpy()
            assert temperature != 1.0 and np.any(p == 0.0), "NaN gradient of another cause"
            _, grad = loss_and_grad(ce_softmax_form, s, t, temperature, factor, torch.float64)
            flags |= GRAD_SOFTMAX_FORM
    assert math.isfinite(loss) and np.all(np.isfinite(grad))
    return loss, grad, flags


def torch32(distance, s, t, temperature, factor):
    fn = mse if distance == KD_MSE else ce_literal
    return loss_and_grad(fn, s, t, temperature, factor, torch.float32)


# ---------------------------------------------------------------- the cases
class Case:
    def __init__(self, name, distance, rows, cols, *, T=2.0, factor=1.0, ld=None,
                 scale=3.0, shift=0.0, kind="random", seed=1):
        self.name, self.distance, self.rows, self.cols = name, distance, rows, cols
        self.T, self.factor = np.float32(T), np.float32(factor)
        self.ld = cols if ld is None else ld
        self.scale, self.shift, self.kind, self.seed = scale, shift, kind, seed


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
    elif c.kind in ("masked", "one-left"):
        # about a third of each row -inf, independently in student and
        # teacher ("one-left": all but one); one class per row always kept.
        u = uniform((c.seed << 20) + 11, 2 * n + c.rows)
        keep = (u[2 * n:] * c.cols).astype(np.int64)
        ms = u[:n].reshape(c.rows, c.cols) < (1.0 if c.kind == "one-left" else 0.33)
        mt = u[n:2 * n].reshape(c.rows, c.cols) < (1.0 if c.kind == "one-left" else 0.33)
        ms[np.arange(c.rows), keep] = False
        mt[np.arange(c.rows), keep] = False
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
    return out


# ---------------------------------------------------------------- the file
def padded(x, ld):
    """rows x cols -> the (rows-1)*ld + cols floats a strided matrix spans,
    padding quiet NaN."""
    rows, cols = x.shape
    buf = np.full(rows * ld, np.nan, dtype="<f4")
    buf.reshape(rows, ld)[:, :cols] = x
    return buf[:(rows - 1) * ld + cols].tobytes()


def write_case(f, c, s, t, loss, grad, flags, t32_loss, t32_grad):
    """Case header (112 bytes, little-endian), then the arrays:
        0  char[40] name, NUL-padded
       40  u32 distance (0 cross-entropy, 1 MSE)   44  u32 flags
       48  f32 factor                              52  f32 temperature
       56  u64 rows   64  u64 cols   72  u64 ld   80  u64 seed
       88  f64 loss (float64 golden)               96  f64 loss of PyTorch float32
      104  u64 reserved (0)
      f32 student[(rows-1)*ld + cols], f32 teacher[same]  (padding: NaN)
      f64 grad[rows*cols]              (dense, float64 golden)
      f32 grad_torch32[rows*cols]      (dense, PyTorch float32)"""
    name = c.name.encode()
    assert len(name) < NAME_BYTES
    f.write(name.ljust(NAME_BYTES, b"\0"))
    f.write(struct.pack("<IIffQQQQddQ", c.distance, flags, c.factor, c.T, c.rows, c.cols,
                        c.ld, c.seed, loss, t32_loss, 0))
    f.write(padded(s, c.ld))
    f.write(padded(t, c.ld))
    f.write(grad.astype("<f8").tobytes())
    f.write(t32_grad.astype("<f4").tobytes())


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
                if c.distance == KD_CROSS_ENTROPY:
                    gaps = np.where(np.isfinite(x), x.max(axis=1, keepdims=True) - x, 0)
                    assert gaps.max() < 700, c.name  # float64 softmax stays normal
            loss, grad, flags = golden(c.distance, s, t, float(c.T), float(c.factor))
            t32_loss, t32_grad = torch32(c.distance, s, t, float(c.T), float(c.factor))
            if not math.isfinite(t32_loss):
                flags |= TORCH32_LOSS_NONFINITE
            if not np.all(np.isfinite(t32_grad)):
                flags |= TORCH32_GRAD_NONFINITE
            if c.kind == "same-buffer":
                flags |= SAME_BUFFER
            write_case(f, c, s, t, loss, grad, flags, t32_loss, t32_grad)
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
