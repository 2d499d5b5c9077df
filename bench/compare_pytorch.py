#!/usr/bin/python3
"""kdloss side by side with PyTorch eager on CPU, in one process, same inputs.

    /usr/bin/python3 bench/compare_pytorch.py [--lib build/src/libkdloss.so] [--threads 1,2]

(Debian's python3-torch is installed for /usr/bin/python3; another python3
earlier on PATH may lack torch.) Build kdloss first (meson setup build &&
ninja -C build); --lib points at its shared library.

What is compared, for each shape, distance, pass and thread count:
  PyTorch  each distance's framework formula as its PyTorch code writes it
           (--distances; tools/gen_golden.py's, the golden vectors'
           formulas, not a second copy):
             ce     LwF: softmax, pow(1/T), renormalise, + 1e-5, log,
                    weighted row sum, mean over rows (ce_literal)
             mse    DER: F.mse_loss
             sce    PyCIL's _KD_loss: -(softmax(t/T) * log_softmax(s/T)).sum() / N
             kl     Avalanche / torchdistill: F.kl_div(log_softmax(s/T),
                    softmax(t/T), reduction="batchmean")
             rkl    Megatron's reverse KL: F.kl_div(log_softmax(t/T),
                    softmax(s/T), "none").sum(-1).mean()
             facil  FACIL's cross_entropy(exp=1/T): softmax, pow(1/T),
                    renormalise, + 1e-5/C, renormalise, log, mean
             jsd    Liger-Kernel's LigerJSD reference (beta 0.5): lerp, log,
                    KLDivLoss(log_target=True) twice
             bce    iCaRL (Mammoth): F.binary_cross_entropy_with_logits(s, sigmoid(t))
           all times factor; "fwd" is the loss, "fwd+bwd" is the loss and
           loss.backward() through autograd (the student requires grad, the
           teacher does not).
  kdloss   ce and mse: kd_loss_f32 ("fwd") and kd_loss_grad_f32 ("fwd+bwd",
           loss and gradient); the others: kd_loss_ex_f32 without and with
           the gradient (no row weights, mean); through ctypes, once per ISA
           this CPU and build support (kd_set_isa, checked with kd_get_isa).
  Threads  --threads N (a list: one table row set per N): both sides use N
           threads, torch.set_num_threads(N) and kd_set_num_threads(N)
           (checked with kd_get_num_threads).

Timing: both sides are warmed up (a dozen calls each), then called in turn,
PyTorch then each ISA, round after round (A B C A B C ...); each round gives a
PyTorch/kdloss time ratio per ISA. The table shows median times and the
median of the per-round ratios ("x" = how many times faster kdloss is).
Inputs: student and teacher logits ~ N(0, 1), fixed seed; T = 2, factor = 1.
The last columns are the largest differences between the two sides over all
ISAs: |loss difference| / |loss| and max |grad difference| / max |grad|.

The module tables (cross-entropy, one thread on both sides, the best ISA)
time a training step's use of the distillation term, forward and backward()
through autograd, called round after round in a random order each round
(seeded by --seed): kdloss.torch.DistillationReg (python/kdloss, loading the
--lib library); a bare autograd.Function around the same C call (allocates
the loss and the gradient, calls, saves; no checks), the least any
autograd.Function pays; and kd_loss_grad_f32 called directly through ctypes
(arguments prepared once). All three do the same work around the C call:
each drops the student's previous gradient (s.grad = None, as zero_grad
does), allocates a new loss and gradient as kdloss.torch does, and leaves
the new gradient in s.grad (autograd hands the module's on without a copy;
the direct call assigns it), so the differences are autograd's and the
module's own. The first table's rounds also run the original pipeline,
whose temporaries and kernels between two kdloss calls evict part of the
autograd and Python working set, as a model's forward pass does in a
training step; the second table's rounds run the three kdloss calls alone.
Both come from the same run. "own cost" is the median over rounds of module
(or bare Function) minus direct call: what autograd and the module's checks
add; "own cost, fastest" is the fastest module round minus the fastest
direct call, less sensitive to other load on the machine; "/ direct" and
"x" are medians of per-round ratios.
"""
import argparse
import ctypes
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

# The PyTorch pipelines are the golden generator's (tools/gen_golden.py), so
# the comparison times exactly the code the golden vectors come from.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import gen_golden as gg  # noqa: E402

gg.torch = torch  # gen_golden imports torch in its main(); these use it directly

KD_CROSS_ENTROPY, KD_MSE = 0, 1
JSD_BETA = 0.5
# name -> kd_distance, and the PyTorch formula fn(s, t, T, factor)
DISTANCES = {"ce": (KD_CROSS_ENTROPY, gg.ce_literal), "mse": (KD_MSE, gg.mse)}
for _name, _code in (("sce", gg.KD_SOFT_CROSS_ENTROPY), ("kl", gg.KD_KL_DIV),
                     ("rkl", gg.KD_KL_DIV_REVERSE), ("facil", gg.KD_CROSS_ENTROPY_UNIFORM_EPS),
                     ("jsd", gg.KD_JSD), ("bce", gg.KD_BCE_SIGMOID)):
    DISTANCES[_name] = (_code, gg.distance_loss(_code, gg.Reduce(beta=JSD_BETA)))
ISAS = {1: "scalar", 2: "avx2", 3: "avx512", 4: "neon"}  # enum kd_isa
# (shape, distance, pass) -> {isa: minimum speed-up}: the cross-entropy's
# speed targets against PyTorch eager, single thread.
# The module's targets: own cost at most 35 us at 256x10; at most 1.15x the
# direct call from 256x1000 classes up.
MODULE_OWN_US = {(256, 10): 35.0}
MODULE_RATIO, MODULE_RATIO_FROM = 1.15, 256 * 1000
TARGETS = {
    ((256, 10), "ce", "fwd+bwd"): {"avx512": 20.0, "avx2": 20.0},
    ((256, 1000), "ce", "fwd"): {"avx512": 10.0, "avx2": 5.0},
    ((256, 1000), "ce", "fwd+bwd"): {"avx512": 12.0, "avx2": 6.0},
    ((64, 32000), "ce", "fwd"): {"avx512": 10.0, "avx2": 5.0},
    ((64, 32000), "ce", "fwd+bwd"): {"avx512": 12.0, "avx2": 6.0},
}


class Params(ctypes.Structure):
    """struct kd_params (include/kdloss.h)."""
    _fields_ = [("distance", ctypes.c_int), ("factor", ctypes.c_float),
                ("temperature", ctypes.c_float), ("beta", ctypes.c_float),
                ("reduction", ctypes.c_int), ("row_weight", ctypes.c_void_p)]


class KdLoss:
    def __init__(self, path):
        lib = ctypes.CDLL(str(path))
        f, sz, p = ctypes.c_float, ctypes.c_size_t, ctypes.c_void_p
        lib.kd_loss_f32.argtypes = [ctypes.c_int, f, f, sz, sz, p, sz, p, sz, p]
        lib.kd_loss_f32.restype = ctypes.c_int
        lib.kd_loss_grad_f32.argtypes = [ctypes.c_int, f, f, sz, sz, p, sz, p, sz, p, p, sz]
        lib.kd_loss_grad_f32.restype = ctypes.c_int
        lib.kd_loss_ex_f32.argtypes = [ctypes.POINTER(Params), sz, sz, p, sz, p, sz, p, p, p, sz]
        lib.kd_loss_ex_f32.restype = ctypes.c_int
        lib.kd_set_isa.argtypes = [ctypes.c_int]
        lib.kd_set_isa.restype = ctypes.c_int
        lib.kd_get_isa.restype = ctypes.c_int
        lib.kd_isa_supported.argtypes = [ctypes.c_int]
        lib.kd_isa_supported.restype = ctypes.c_int
        lib.kd_status_str.argtypes = [ctypes.c_int]
        lib.kd_status_str.restype = ctypes.c_char_p
        lib.kd_version_string.restype = ctypes.c_char_p
        lib.kd_set_num_threads.argtypes = [ctypes.c_int]
        lib.kd_set_num_threads.restype = ctypes.c_int
        lib.kd_get_num_threads.restype = ctypes.c_int
        self.lib = lib
        self.version = lib.kd_version_string().decode()
        self.isas = [name for num, name in ISAS.items() if lib.kd_isa_supported(num)]
        self.loss = ctypes.c_float()
        self.loss_ptr = ctypes.addressof(self.loss)

    def set_isa(self, name):
        num = next(k for k, v in ISAS.items() if v == name)
        if self.lib.kd_set_isa(num) != 0 or self.lib.kd_get_isa() != num:
            sys.exit(f"kd_set_isa({name}) failed: in use is {ISAS.get(self.lib.kd_get_isa())}")

    def set_threads(self, n):
        """n threads on both sides."""
        torch.set_num_threads(n)
        status = self.lib.kd_set_num_threads(n)
        if status != 0 or self.lib.kd_get_num_threads() != n:
            sys.exit(f"kd_set_num_threads({n}) failed: "
                     f"{self.lib.kd_status_str(status).decode()}")

    def caller(self, distance, grad_pass, s, t, g, temperature, factor):
        """A no-argument function making one call on these tensors (the ctypes
        arguments are prepared once, outside the timing)."""
        rows, cols = s.shape
        dist = DISTANCES[distance][0]
        sp, tp, gp = s.data_ptr(), t.data_ptr(), g.data_ptr()
        lib, out = self.lib, self.loss_ptr
        if dist not in (KD_CROSS_ENTROPY, KD_MSE):
            fn = lib.kd_loss_ex_f32
            params = Params(dist, factor, temperature, JSD_BETA, 0, None)
            args = (params, rows, cols, sp, cols, tp, cols, out, None, gp if grad_pass else None,
                    cols)
        elif grad_pass:
            fn = lib.kd_loss_grad_f32
            args = (dist, factor, temperature, rows, cols, sp, cols, tp, cols, out, gp, cols)
        else:
            fn = lib.kd_loss_f32
            args = (dist, factor, temperature, rows, cols, sp, cols, tp, cols, out)

        def call():
            status = fn(*args)
            if status:
                sys.exit(f"kdloss failed: {lib.kd_status_str(status).decode()}")
        return call


def time_call(fn):
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def compare(kd, shape, distance, grad_pass, args):
    rows, cols = shape
    gen = torch.Generator().manual_seed(args.seed)
    s = torch.randn(rows, cols, generator=gen)
    t = torch.randn(rows, cols, generator=gen)
    s_req = s.clone().requires_grad_(True)
    g = torch.empty_like(s)
    torch_fn = DISTANCES[distance][1]
    T, factor = args.temperature, args.factor

    def torch_call():
        if grad_pass:
            s_req.grad = None
            torch_fn(s_req, t, T, factor).backward()
        else:
            with torch.no_grad():
                torch_fn(s, t, T, factor)

    # Accuracy, untimed: PyTorch's float32 pipeline against each ISA.
    if grad_pass:
        s_req.grad = None
        ref = torch_fn(s_req, t, T, factor)
        ref.backward()
        ref_loss, ref_grad = ref.item(), s_req.grad.clone()
    else:
        with torch.no_grad():
            ref_loss, ref_grad = torch_fn(s, t, T, factor).item(), None
    callers, dloss, dgrad = {}, 0.0, 0.0
    for isa in kd.isas:
        kd.set_isa(isa)
        callers[isa] = kd.caller(distance, grad_pass, s, t, g, T, factor)
        callers[isa]()
        dloss = max(dloss, abs(kd.loss.value - ref_loss) / abs(ref_loss))
        if grad_pass:
            dgrad = max(dgrad, ((g - ref_grad).abs().max() / ref_grad.abs().max()).item())

    for _ in range(args.warmup):
        torch_call()
    for isa in kd.isas:
        kd.set_isa(isa)
        for _ in range(args.warmup):
            callers[isa]()

    # Rounds: enough to fill about --budget seconds, within [--min-rounds, --max-rounds].
    t0 = time.perf_counter()
    torch_call()
    for isa in kd.isas:
        kd.set_isa(isa)
        callers[isa]()
    per_round = time.perf_counter() - t0
    rounds = int(min(args.max_rounds, max(args.min_rounds, args.budget / per_round)))

    torch_ns, kd_ns = [], {isa: [] for isa in kd.isas}
    ratios = {isa: [] for isa in kd.isas}
    for _ in range(rounds):
        tt = time_call(torch_call)
        torch_ns.append(tt)
        for isa in kd.isas:
            kd.set_isa(isa)
            k = time_call(callers[isa])
            kd_ns[isa].append(k)
            ratios[isa].append(tt / k)
    return {
        "torch": statistics.median(torch_ns),
        "kd": {isa: statistics.median(v) for isa, v in kd_ns.items()},
        "x": {isa: statistics.median(v) for isa, v in ratios.items()},
        "rounds": rounds,
        "dloss": dloss,
        "dgrad": dgrad if grad_pass else None,
    }


def loss_grad(kd, s, t, T, factor):
    """A no-argument function returning a new loss and gradient from one
    kd_loss_grad_f32 call, both allocated as kdloss.torch allocates them."""
    rows, cols = s.shape
    fn, sp, tp = kd.lib.kd_loss_grad_f32, s.data_ptr(), t.data_ptr()
    new_f32 = torch.empty((), dtype=torch.float32).new_empty

    def compute():
        loss, grad = new_f32(()), new_f32((rows, cols))
        if fn(KD_CROSS_ENTROPY, factor, T, rows, cols, sp, cols, tp, cols,
              loss.data_ptr(), grad.data_ptr(), cols):
            sys.exit("kdloss failed")
        return loss, grad
    return compute


def bare_function(kd, s, t, T, factor):
    """A no-argument training-step call of the least an autograd.Function
    around kd_loss_grad_f32 can do: allocate the loss and the gradient, call,
    save; backward hands the saved gradient on. No checks, no conversions."""
    compute = loss_grad(kd, s, t, T, factor)

    class Bare(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            loss, grad = compute()
            ctx.save_for_backward(grad)
            return loss

        @staticmethod
        def backward(ctx, grad_output):
            grad, = ctx.saved_tensors
            return grad if grad_output.item() == 1.0 else grad * grad_output

    def call():
        s.grad = None
        Bare.apply(s).backward()
    return call


def compare_module(kd, shape, args, DistillationReg, with_original):
    """The module table's row for one shape (see the module text)."""
    rows, cols = shape
    gen = torch.Generator().manual_seed(args.seed)
    s = torch.randn(rows, cols, generator=gen).requires_grad_(True)
    t = torch.randn(rows, cols, generator=gen)
    g = torch.empty_like(s)
    T, factor = args.temperature, args.factor
    reg = DistillationReg(factor, T, "cross_entropy")
    compute = loss_grad(kd, s, t, T, factor)

    def direct():
        s.grad = None
        s.grad = compute()[1]

    def original():
        s.grad = None
        gg.ce_literal(s, t, T, factor).backward()

    def module():
        s.grad = None
        reg(s, t).backward()

    bare = bare_function(kd, s, t, T, factor)
    kd.caller("ce", True, s.detach(), t, g, T, factor)()
    same = True
    for fn in (direct, bare, module):
        fn()
        same = same and torch.equal(s.grad, g)
    same = same and kd.loss.value == reg(s.detach(), t).item()
    calls = {"module": module, "bare": bare, "direct": direct}
    if with_original:
        calls["original"] = original
    for fn in calls.values():
        for _ in range(args.warmup):
            fn()
    t0 = time.perf_counter()
    for fn in calls.values():
        fn()
    per_round = time.perf_counter() - t0
    rounds = int(min(args.max_rounds, max(args.min_rounds, args.budget / per_round)))
    ns = {name: [] for name in calls}
    order, rng = list(calls.items()), random.Random(args.seed)
    for _ in range(rounds):
        rng.shuffle(order)  # none of them always runs right after another
        for name, fn in order:
            ns[name].append(time_call(fn))
    med = statistics.median
    return {
        **{name: med(v) for name, v in ns.items()},
        "own": med([m - d for m, d in zip(ns["module"], ns["direct"])]),
        "own_bare": med([b - d for b, d in zip(ns["bare"], ns["direct"])]),
        "own_min": min(ns["module"]) - min(ns["direct"]),
        "ratio_min": min(ns["module"]) / min(ns["direct"]),
        "ratio": med([m / d for m, d in zip(ns["module"], ns["direct"])]),
        "ratio_bare": med([b / d for b, d in zip(ns["bare"], ns["direct"])]),
        "x": med([o / m for o, m in zip(ns["original"], ns["module"])]) if with_original else None,
        "same": same,
        "rounds": rounds,
    }


PHASES = {True: "rounds with the original pipeline", False: "rounds of the kdloss calls alone"}


def module_table(kd, args, DistillationReg):
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.module_shapes.split(",")]
    kd.set_threads(1)
    kd.set_isa(kd.isas[-1])
    print(f"\nModule end to end: DistillationReg(factor, T, 'cross_entropy') forward + "
          f"backward(), ISA {kd.isas[-1]}, one thread on both sides")
    checks = []
    for with_original, phase in PHASES.items():
        print(f"\n{phase[0].upper() + phase[1:]}\n")
        print("| shape | original | module | bare Function | direct C call | own cost | "
              "bare Function's own cost | own cost, fastest | module / direct | "
              "bare Function / direct | x original / module | grads == direct | rounds |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for shape in shapes:
            r = compare_module(kd, shape, args, DistillationReg, with_original)
            name = f"{shape[0]}x{shape[1]}"
            x = "-" if r["x"] is None else f"{r['x']:.1f}"
            print(f"| {name} | {fmt_time(r['original']) if with_original else '-'} | "
                  f"{fmt_time(r['module'])} | {fmt_time(r['bare'])} | {fmt_time(r['direct'])} | "
                  f"{r['own'] / 1e3:.1f} us | {r['own_bare'] / 1e3:.1f} us | "
                  f"{r['own_min'] / 1e3:.1f} us | {r['ratio']:.2f} | {r['ratio_bare']:.2f} | "
                  f"{x} | {'yes' if r['same'] else 'NO'} | {r['rounds']} |", flush=True)
            if shape in MODULE_OWN_US:
                want = MODULE_OWN_US[shape]
                checks.append(f"| {name} | {phase} | own cost <= {want:g} us | "
                              f"{r['own'] / 1e3:.1f} us | {r['own_min'] / 1e3:.1f} us | "
                              f"{r['own_bare'] / 1e3:.1f} us | "
                              f"{'met' if r['own'] / 1e3 <= want else 'MISSED'} |")
            if shape[0] * shape[1] >= MODULE_RATIO_FROM:
                checks.append(f"| {name} | {phase} | module / direct <= {MODULE_RATIO:g} | "
                              f"{r['ratio']:.2f} | {r['ratio_min']:.2f} | "
                              f"{r['ratio_bare']:.2f} | "
                              f"{'met' if r['ratio'] <= MODULE_RATIO else 'MISSED'} |")
    print("\nModule targets (measured: medians, as in the tables; fastest rounds: the "
          "fastest module round against the fastest direct call; bare Function: the "
          "same median for the bare Function, the floor of any autograd.Function)\n")
    print("| shape | rounds | target | measured | fastest rounds | bare Function | |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(checks))


def fmt_time(ns):
    return f"{ns / 1e3:.1f} us" if ns < 1e6 else f"{ns / 1e6:.2f} ms"


def main():
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", default=str(root / "build" / "src" / "libkdloss.so"),
                    help="kdloss shared library (default: %(default)s)")
    ap.add_argument("--shapes", default="128x100,256x1000,64x32000",
                    help="rows x cols list (default: %(default)s)")
    ap.add_argument("--module-shapes", default="256x2,256x10,256x20,256x100,256x1000,64x32000",
                    help="rows x cols list of the module table (default: %(default)s)")
    ap.add_argument("--tables", choices=["all", "kernels", "module"], default="all",
                    help="which tables to print (default: %(default)s)")
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}",
                    help="thread counts, each used by both PyTorch and kdloss "
                         "(default: %(default)s, i.e. one and all cores)")
    ap.add_argument("--distances", default=",".join(DISTANCES),
                    help="distances of the kernel tables (default: %(default)s)")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--factor", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=12, help="untimed calls per side first")
    ap.add_argument("--budget", type=float, default=1.0,
                    help="seconds of timed rounds per table row (default: %(default)s)")
    ap.add_argument("--min-rounds", type=int, default=15)
    ap.add_argument("--max-rounds", type=int, default=301)
    args = ap.parse_args()
    unknown = set(args.distances.split(",")) - set(DISTANCES)
    if unknown:
        sys.exit(f"--distances: unknown {', '.join(sorted(unknown))}; valid: {', '.join(DISTANCES)}")
    if not Path(args.lib).exists():
        sys.exit(f"{args.lib} not found: build kdloss first (meson setup build && ninja -C build)"
                 " or pass --lib")

    kd = KdLoss(args.lib)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    threads = sorted({int(v) for v in args.threads.split(",")})
    if threads[0] < 1:
        sys.exit("--threads: counts must be >= 1")
    print(f"kdloss {kd.version} ({args.lib}), ISAs: {' '.join(kd.isas)}; "
          f"torch {torch.__version__}; {os.cpu_count()} CPUs; "
          f"T={args.temperature}, factor={args.factor}, inputs N(0,1) seed {args.seed}")
    if args.tables in ("all", "kernels"):
        kernel_tables(kd, args, shapes, threads)
    if args.tables in ("all", "module"):
        # The module loads the same library (one handle: the ISA set here is its ISA).
        os.environ["KDLOSS_LIBRARY"] = str(Path(args.lib).resolve())
        sys.path.insert(0, str(root / "python"))
        from kdloss.torch import DistillationReg
        module_table(kd, args, DistillationReg)


def kernel_tables(kd, args, shapes, threads):
    print("times are medians; 'x' is the median of per-round PyTorch/kdloss time ratios; "
          f"threads {', '.join(map(str, threads))}: PyTorch and kdloss both use the row's count")
    print()
    head = ["shape", "dist", "pass", "threads", "torch"]
    for isa in kd.isas:
        head += [isa, f"{isa} x"]
    head += ["rel. loss diff", "rel. grad diff", "rounds"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    results = {}
    for nthreads in threads:
        kd.set_threads(nthreads)
        for shape in shapes:
            for distance in args.distances.split(","):
                for grad_pass in (False, True):
                    pname = "fwd+bwd" if grad_pass else "fwd"
                    r = compare(kd, shape, distance, grad_pass, args)
                    results[(shape, distance, pname, nthreads)] = r
                    row = [f"{shape[0]}x{shape[1]}", distance, pname, str(nthreads),
                           fmt_time(r["torch"])]
                    for isa in kd.isas:
                        row += [fmt_time(r["kd"][isa]), f"{r['x'][isa]:.1f}"]
                    row += [f"{r['dloss']:.1e}",
                            "-" if r["dgrad"] is None else f"{r['dgrad']:.1e}", str(r["rounds"])]
                    print("| " + " | ".join(row) + " |", flush=True)

    rows = []
    for (shape, distance, pname), want in TARGETS.items():
        r = results.get((shape, distance, pname, 1))
        for isa, target in want.items():
            if r is None or isa not in r["x"]:
                continue
            got = r["x"][isa]
            rows.append(f"| {shape[0]}x{shape[1]} | {distance} | {pname} | {isa} | "
                        f">= {target:g}x | {got:.1f}x | {'met' if got >= target else 'MISSED'} |")
    if rows:
        print("\nTargets (one thread)\n")
        print("| shape | dist | pass | ISA | target | measured | |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
