#!/usr/bin/python3
"""Learning without Forgetting on scikit-learn's digits, distilled by kdloss or by plain PyTorch.

    /usr/bin/python3 examples/lwf_digits.py [--distill kdloss|torch|both] [--epochs N]

From a build tree, run it inside `meson devenv -C build` (or with
KDLOSS_LIBRARY=build/src/libkdloss.so PYTHONPATH=python). The digits data set
(1797 8x8 images) ships with Debian's python3-sklearn: nothing is downloaded.

Five tasks of two digits each (0-1, 2-3, ..., 8-9), learnt one after the
other by one MLP with a 10-way output. On task k the loss is the
cross-entropy over that task's two outputs plus LwF's distillation term over
the outputs of the earlier tasks, against the model as it was when task k-1
ended (the teacher). The term is `DistillationReg(factor, temperature,
"cross_entropy")`: kdloss's, or the original written in PyTorch (below),
chosen by --distill. After each task the accuracy on every task seen so far
is printed (task-incremental: the argmax over the task's two outputs), and
at the end the time spent in the distillation term (forward and backward).
"""
import argparse
import copy
import time

import torch
import torch.nn.functional as F
from torch import nn


class TorchDistillationReg(nn.Module):
    """The distillation term in plain PyTorch, as continual-learning code writes it."""

    def __init__(self, factor, temperature, distance):
        super().__init__()
        self.factor, self.temperature, self.distance = factor, temperature, distance

    def forward(self, student_logits, teacher_logits):
        if self.distance == "MSE":
            return F.mse_loss(student_logits, teacher_logits) * self.factor
        q = torch.softmax(student_logits, dim=1).pow(1.0 / self.temperature)
        q = q / q.sum(dim=1, keepdim=True)
        r = torch.softmax(teacher_logits, dim=1).pow(1.0 / self.temperature)
        r = r / r.sum(dim=1, keepdim=True)
        return -(r * torch.log(q + 1e-5)).sum(dim=1).mean() * self.factor


def make_reg(distill, factor, temperature):
    if distill == "kdloss":
        from kdloss.torch import DistillationReg
        return DistillationReg(factor, temperature, "cross_entropy")
    return TorchDistillationReg(factor, temperature, "cross_entropy")


def digits_tasks(n_tasks):
    """[(x_train, y_train, x_test, y_test)] for digits 2k and 2k+1, k < n_tasks."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16.0, y, test_size=0.25, random_state=0,
                                              stratify=y)
    tasks = []
    for k in range(n_tasks):
        tr, te = (y_tr // 2) == k, (y_te // 2) == k
        tasks.append((torch.tensor(x_tr[tr], dtype=torch.float32), torch.tensor(y_tr[tr]),
                      torch.tensor(x_te[te], dtype=torch.float32), torch.tensor(y_te[te])))
    return tasks


def accuracy(model, task, k):
    _, _, x, y = task
    with torch.no_grad():
        pred = model(x)[:, 2 * k:2 * k + 2].argmax(dim=1) + 2 * k
    return (pred == y).float().mean().item()


def train(distill, *, tasks=5, epochs=10, steps=None, batch=32, lr=0.1, factor=1.0,
          temperature=2.0, seed=0, on_step=None, report=print):
    """Trains through the tasks; returns (accuracies after each task, seconds
    in the distillation term, its number of calls). steps bounds the optimiser steps per task;
    on_step(model) runs after every step."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    reg = make_reg(distill, factor, temperature)
    data = digits_tasks(tasks)
    order = torch.Generator().manual_seed(seed + 1)
    teacher, seconds, calls, history = None, 0.0, 0, []
    for k, (x, y, _, _) in enumerate(data):
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        lo = 2 * k  # outputs 0 .. lo-1 belong to the earlier tasks
        done = 0
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=order).split(batch):
                if steps is not None and done == steps:
                    break
                out = model(x[idx])
                loss = F.cross_entropy(out[:, lo:lo + 2], y[idx] - lo)
                opt.zero_grad()
                if teacher is None:
                    loss.backward()
                else:
                    with torch.no_grad():
                        old = teacher(x[idx])[:, :lo]
                    # The term runs on a detached copy of the old outputs so its
                    # forward and backward can be timed alone; its gradient then
                    # joins the task loss's on the way into the model, exactly
                    # as (loss + reg(out[:, :lo], old)).backward() would.
                    z = out[:, :lo].detach().requires_grad_()
                    t0 = time.perf_counter()
                    reg(z, old).backward()
                    seconds += time.perf_counter() - t0
                    calls += 1
                    torch.autograd.backward([loss, out[:, :lo]], [None, z.grad])
                opt.step()
                done += 1
                if on_step is not None:
                    on_step(model)
        teacher = copy.deepcopy(model).requires_grad_(False)
        accs = [accuracy(model, data[j], j) for j in range(k + 1)]
        history.append(accs)
        report(f"  after task {k} (digits {lo}, {lo + 1}): accuracy per task "
               + " ".join(f"{a:.3f}" for a in accs))
    return history, seconds, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distill", choices=["kdloss", "torch", "both"], default="both")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--factor", type=float, default=1.0)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads (default: 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kinds = ["kdloss", "torch"] if args.distill == "both" else [args.distill]
    for kind in kinds:
        print(f"{kind}: LwF, factor {args.factor}, T {args.temperature}, {args.epochs} epochs "
              "per task")
        _, seconds, calls = train(kind, epochs=args.epochs, factor=args.factor,
                                  temperature=args.temperature)
        print(f"  distillation term, forward + backward: {seconds * 1e3:.1f} ms in {calls} calls "
              f"({seconds / calls * 1e6:.1f} us per call)")


if __name__ == "__main__":
    main()
