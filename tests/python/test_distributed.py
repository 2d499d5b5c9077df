"""kdloss under torch.distributed: two processes (gloo on 127.0.0.1) train a
layer under DistributedDataParallel, each computing kdloss's loss on its half
of the batch; DDP's averaged gradients must equal one process's gradient over
the whole batch. Every step is bounded in time."""
import datetime
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROWS, FEATURES, CLASSES = 16, 12, 7
SECONDS = 120  # the whole two-process run, including torch's start-up


def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(ROWS, FEATURES, generator=g), 3 * torch.randn(ROWS, CLASSES, generator=g)


def layer():
    torch.manual_seed(1)
    return torch.nn.Linear(FEATURES, CLASSES)


def reg():
    from kdloss.torch import DistillationReg
    return DistillationReg(1.0, 2.0, "cross_entropy")


def worker(rank, port, out):
    """One rank (run in its own interpreter by the test)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=SECONDS // 2))
    net = DistributedDataParallel(layer())
    x, teacher = batch()
    half = slice(rank * ROWS // 2, (rank + 1) * ROWS // 2)
    reg()(net(x[half]), teacher[half]).backward()
    torch.save([p.grad for p in net.parameters()], out)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes(tmp_path):
    port = free_port()
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1")
    here = Path(__file__).resolve().parent
    procs = [subprocess.Popen(
        [sys.executable, "-c", f"import test_distributed as t; t.worker({r}, {port}, "
                               f"{str(tmp_path / f'grad{r}.pt')!r})"],
        cwd=here, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in range(2)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=SECONDS)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)

    net = layer()
    x, teacher = batch()
    reg()(net(x), teacher).backward()
    whole = [p.grad for p in net.parameters()]
    ranks = [torch.load(tmp_path / f"grad{r}.pt") for r in range(2)]
    for g0, g1, w in zip(ranks[0], ranks[1], whole):
        assert torch.equal(g0, g1)  # DDP gave both ranks the same average
        tol = 1e-5 * w.abs().max().item() + 1e-7
        assert (g0 - w).abs().max().item() <= tol
    assert any(w.abs().max() > 1e-3 for w in whole)
