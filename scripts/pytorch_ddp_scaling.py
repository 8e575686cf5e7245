"""PyTorch's own data-parallel scaling on this machine: the anchor for `node dist/src/dist/scaling_bench.js`.

The same protocol as the scaling bench's small-CNN form: the same CNN (3 conv-BN-ReLU stages 3->32->64->128,
global pooling, linear 10), SGD (lr 0.05, momentum 0.9, weight decay 1e-4), global batch 64 of 32x32 inputs,
1 process x 1 thread against N processes x 1 thread on slices of it, Gloo on loopback; every step starts with a
barrier, the slowest rank's time counts, the median over the timed steps is reported. Here torch's
DistributedDataParallel averages the gradients (its Reducer, buckets overlapped with backward). The control, N
independent processes on batch/N each with no exchange, gives the ceiling this machine allows.

    /usr/bin/python3 scripts/pytorch_ddp_scaling.py [--nproc 2] [--steps 20] [--warmup 3] [--rounds 3] [--pin]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def cnn(nn):
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def worker(args):
    if args.pin:  # before torch starts threads: they inherit the calling thread's CPU set
        os.sched_setaffinity(0, range(int(os.environ["WORLD_SIZE"])))
    import torch
    import torch.distributed as dist
    import torch.nn as nn

    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    independent = os.environ.get("SCALING_INDEPENDENT") == "1"  # the control: no group, no exchange
    torch.manual_seed(0)
    net = cnn(nn)
    if world > 1 and not independent:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        net = nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    local = args.batch // world
    torch.manual_seed(1 + rank)
    x = torch.randn(local, 3, 32, 32)
    y = torch.randint(0, 10, (local,))
    times = []
    cpu0 = time.process_time()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            cpu0 = time.process_time()
        if world > 1 and not independent:
            dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        if step >= args.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / args.steps
    print("BENCH " + json.dumps({"rank": rank, "stepMs": times, "cpuMs": cpu}), flush=True)
    if world > 1 and not independent:
        dist.barrier()
        dist.destroy_process_group()


def run(nproc, args, independent=False):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(nproc):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                   SCALING_INDEPENDENT="1" if independent else "0")
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", *sys.argv[1:]], env=env, stdout=subprocess.PIPE, text=True))
    reports = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"pytorch ddp scaling: a worker of {nproc} failed")
        reports += [json.loads(l[6:]) for l in out.splitlines() if l.startswith("BENCH ")]
    per_step = [max(r["stepMs"][i] for r in reports) for i in range(args.steps)]
    return statistics.median(per_step), sum(r["cpuMs"] for r in reports)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pin", action="store_true", help="run N processes on CPUs 0..N-1 (as scaling_bench.js --pin)")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    load = os.getloadavg()[0]
    rounds = []  # interleaved, as scaling_bench.js: each figure is the median over the rounds
    for _ in range(args.rounds):
        rounds.append((run(1, args), run(args.nproc, args), run(args.nproc, args, independent=True)))
    mid = lambda config, k: statistics.median(r[config][k] for r in rounds)
    single, single_cpu, multi, multi_cpu, indep = mid(0, 0), mid(0, 1), mid(1, 0), mid(1, 1), mid(2, 0)
    import torch
    print(f"pytorch ddp scaling ({torch.__version__}): small CNN, global batch {args.batch}, 1 thread per process{f', bound to {args.nproc} CPUs / 1 CPU' if args.pin else ''}; 1-min load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"  1 process         {single:.1f} ms/step, CPU {single_cpu:.1f} ms/step")
    print(f"  {args.nproc} processes       {multi:.1f} ms/step, CPU {multi_cpu:.1f} ms/step (all processes)")
    print(f"  {args.nproc} independent     {indep:.1f} ms/step (no exchange: the ceiling, {100 * single / indep / args.nproc:.0f}%)")
    print(f"  speedup {single / multi:.2f}x, scaling efficiency {100 * single / multi / args.nproc:.0f}% ({100 * indep / multi:.0f}% of the ceiling)")
    eff = " ".join(f"{100 * s[0] / m[0] / args.nproc:.0f}%" for s, m, _ in rounds)
    of = " ".join(f"{100 * i[0] / m[0]:.0f}%" for _, m, i in rounds)
    print(f"  rounds: efficiency {eff}; of the ceiling {of}")


if __name__ == "__main__":
    main()
