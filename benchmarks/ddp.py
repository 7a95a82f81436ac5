"""Data-parallel training, eager against ``flaggems_exp.use_gems()``: loss curve, final weights
and step time, one process per device.

    torchrun --standalone --nproc-per-node 2 -m benchmarks.ddp            # two GPUs (NCCL)
    torchrun --standalone --nproc-per-node 2 -m benchmarks.ddp --model transformer --steps 20
    python -m benchmarks.ddp --tiny --steps 2                             # one process (gloo)

Each process trains ``benchmarks.models``' transformer and conv net with
``DistributedDataParallel`` (NCCL on CUDA, each rank on the device ``LOCAL_RANK`` names; gloo on
the CPU) and SGD with momentum, three times in this order: ``eager`` (eager_a), ``gems`` (the
whole run inside one ``use_gems()`` block: forward, backward, DDP's gradient buckets, the
optimizer) and ``eager`` again (eager_b, for run-to-run noise). Every run starts from the same
seeded model, and each rank trains on its own slice of one seeded batch, the same at every step
and in every run. A run is ``--warmup`` untimed steps then ``--steps`` timed ones, each between
two device synchronizations; its step time is the median over timed steps, the slowest rank's.

Correctness: gems' loss curve (every step's loss, averaged over ranks) and final weights against
eager_a's, next to eager_b's against eager_a's (the noise); ``ok`` as in ``benchmarks.models``:
within 10× the noise, or every value within its rtol/atol. ``ratio`` is eager_a's step time over
gems'. Rank 0 writes ``ddp.csv`` and ``ddp.md`` to ``--out`` (default: a fresh temporary
directory; the committed ``benchmarks/results/`` only when named). A failing model records its
error in its row and the run goes on.
"""
import argparse
import contextlib
import csv
import datetime
import os
import pathlib
import socket
import statistics
import sys
import tempfile
import time

import attrs
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import flaggems_exp

from . import cases, models, run, timing

DDP_MODELS = ("transformer", "convnet")
LEARNING_RATE, MOMENTUM = 0.01, 0.9
ENV_COLUMNS = models.ENV_COLUMNS
COLUMNS = ("model", "ranks", "backend", "dtype", "batch_per_rank", "steps", "eager_ms",
           "eager_again_ms", "gems_ms", "ratio", "loss_diff", "loss_noise", "weight_diff",
           "weight_noise", "ok", "first_loss", "last_loss", "launches", "error", *ENV_COLUMNS)
CSV_NAME, REPORT_NAME = "ddp.csv", "ddp.md"


@attrs.frozen
class Rank:
    """This process's place: its rank, the world's size, and the device it trains on."""

    rank: int
    world: int
    device: torch.device
    backend: str


def join(backend=None):
    """Join the process group torchrun describes in the environment, or, started alone, a group
    of one on a free local port. Each rank makes its own device the current one: ``"cuda"`` in
    the models (their inputs, our plans' allocations) then means that device."""
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
    backend = backend or ("nccl" if timing.CUDA else "gloo")
    if timing.CUDA:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=10),
                            **({"device_id": device} if device.type == "cuda" else {}))
    return Rank(dist.get_rank(), dist.get_world_size(), device, backend)


def shard(value, place):
    """This rank's slice (along dim 0) of a tensor, or of each tensor of a tuple."""
    if isinstance(value, tuple):
        return tuple(shard(v, place) for v in value)
    return value.chunk(place.world)[place.rank]


@attrs.define
class Run:
    losses: list        # every step's loss, the mean over ranks
    weights: list       # the final parameters, in named_parameters order
    ms: float           # median step time of the timed steps, the slowest rank's
    launches: int       # our kernel launches in the last step (gems)


def train(built, initial, place, batch, args, context):
    """One run of ``--warmup`` + ``--steps`` DDP training steps from ``initial``, ``batch``
    samples per rank, inside ``context()``."""
    model = built.model
    model.load_state_dict(initial)
    model.train()
    ddp = DistributedDataParallel(
        model, device_ids=[place.device.index] if place.device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                                foreach=False)
    inputs, target = built.make_inputs(batch * place.world)
    inputs, target = shard(inputs, place), shard(target, place)
    losses, times, launches = [], [], 0
    with context():
        for step in range(args.warmup + args.steps):
            before = sum(flaggems_exp.LAUNCHES.values())
            timing.synchronize()
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            torch.manual_seed(models.SEED + step)
            loss = built.loss_fn(ddp(*inputs), target)
            loss.backward()
            optimizer.step()
            timing.synchronize()
            if step >= args.warmup:
                times.append((time.perf_counter() - start) * 1e3)
            launches = sum(flaggems_exp.LAUNCHES.values()) - before
            mean = loss.detach().double()
            dist.all_reduce(mean)
            losses.append(mean.item() / place.world)
    slowest = torch.tensor(statistics.median(times), dtype=torch.float64, device=place.device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    weights = [p.detach().clone() for p in model.parameters()]
    return Run(losses, weights, slowest.item(), launches)


@attrs.define
class Case:
    model: str
    ranks: int
    backend: str
    dtype: str
    batch_per_rank: int
    steps: int
    eager_ms: object = None
    eager_again_ms: object = None
    gems_ms: object = None
    ratio: object = None
    loss_diff: object = None
    loss_noise: object = None
    weight_diff: object = None
    weight_noise: object = None
    ok: object = None
    first_loss: object = None
    last_loss: object = None
    launches: object = None
    error: str = ""

    def cells(self, env):
        return models.case_cells(self, COLUMNS, env)


def run_model(case, name, place, args):
    """Fills ``case``; a failure goes into ``case.error`` (what was measured before stays)."""
    stage = "build"
    try:
        torch.manual_seed(models.SEED)
        built = models.MODELS[name](args.sizes, args.dtype)
        built = attrs.evolve(built, model=built.model.to(place.device, args.dtype))
        initial = {k: v.clone() for k, v in built.model.state_dict().items()}
        runs = {}
        for stage, context in (("eager", contextlib.nullcontext), ("gems", flaggems_exp.use_gems),
                               ("eager again", contextlib.nullcontext)):
            runs[stage] = train(built, initial, place, case.batch_per_rank, args, context)
        stage = "compare"
        eager_a, gems, eager_b = runs["eager"], runs["gems"], runs["eager again"]
        case.eager_ms, case.gems_ms, case.eager_again_ms = eager_a.ms, gems.ms, eager_b.ms
        case.ratio = eager_a.ms / gems.ms
        case.launches = gems.launches
        case.first_loss, case.last_loss = gems.losses[0], gems.losses[-1]
        curves = [torch.tensor(r.losses, dtype=torch.float64) for r in (eager_a, gems, eager_b)]
        case.loss_diff = models.max_abs_diff([curves[1]], [curves[0]])
        case.loss_noise = models.max_abs_diff([curves[2]], [curves[0]])
        case.weight_diff = models.max_abs_diff(gems.weights, eager_a.weights)
        case.weight_noise = models.max_abs_diff(eager_b.weights, eager_a.weights)
        case.ok = all(
            diff <= models.NOISE_FACTOR * noise or models.within_tolerance(ours, theirs, args.dtype)
            for diff, noise, ours, theirs in (
                (case.loss_diff, case.loss_noise, [curves[1]], [curves[0]]),
                (case.weight_diff, case.weight_noise, gems.weights, eager_a.weights)))
    except Exception as exc:  # noqa: BLE001 - recorded in the row, the run goes on
        case.error = f"{stage}: {cases.error_line(exc)}"


def report(rows, env, place, args):
    rtol, atol = models.TOLERANCE[args.dtype]
    lines = ["# DDP training: eager vs flaggems_exp", "",
             f"{place.world} rank(s), {place.backend}, {env.gpu}, torch {env.torch}, triton "
             f"{env.triton}, commit {env.commit}; SGD (lr {LEARNING_RATE}, momentum {MOMENTUM}), "
             f"{args.warmup} warm-up + {args.steps} timed steps, median step time of the slowest "
             f"rank{', tiny shapes' if args.tiny else ''}. ratio = eager ms / gems ms; ok: loss "
             f"curve and final weights each within {models.NOISE_FACTOR}× eager's run-to-run "
             f"noise, or within rtol {rtol:g} / atol {atol:g}.", "",
             "| model | ranks | batch/rank | eager ms | eager again ms | gems ms | ratio | "
             "loss diff | loss noise | weight diff | weight noise | ok | loss first → last | "
             "launches/step | error |",
             "|" + " --- |" * 15]
    for c in rows:
        lines.append(
            f"| {c.model} | {c.ranks} | {c.batch_per_rank} | "
            f"{models.shown(c.eager_ms, '.3f')} | {models.shown(c.eager_again_ms, '.3f')} | "
            f"{models.shown(c.gems_ms, '.3f')} | {models.shown(c.ratio, '.2f')} | "
            f"{models.shown(c.loss_diff, '.3g')} | {models.shown(c.loss_noise, '.3g')} | "
            f"{models.shown(c.weight_diff, '.3g')} | {models.shown(c.weight_noise, '.3g')} | "
            f"{'–' if c.ok is None else c.ok} | {models.shown(c.first_loss, '.4g')} → "
            f"{models.shown(c.last_loss, '.4g')} | {'–' if c.launches is None else c.launches} | "
            f"{c.error.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ddp",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], choices=DDP_MODELS,
                        help="a model (repeatable); default: both")
    parser.add_argument("--dtype", default="float32", choices=list(models.DTYPES))
    parser.add_argument("--batch", type=int, default=None, metavar="N",
                        help="samples per rank (default: models' large batch: 32 sequences, "
                             "64 images; --tiny: 2)")
    parser.add_argument("--steps", type=int, default=10, metavar="N",
                        help="timed training steps per run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, metavar="N",
                        help="untimed training steps first, in the loss curve too (default 2)")
    parser.add_argument("--tiny", action="store_true",
                        help="models' tiny shapes, for the CPU (the interpreter)")
    parser.add_argument("--backend", default=None, choices=("nccl", "gloo"),
                        help="default: nccl on CUDA, gloo on the CPU")
    parser.add_argument("--out", type=pathlib.Path, default=None, metavar="DIR",
                        help=f"where rank 0 writes {CSV_NAME} and {REPORT_NAME} (default: a "
                             "fresh temporary directory)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps takes a positive count, --warmup a count")
    args.models = list(dict.fromkeys(args.model)) or list(DDP_MODELS)
    args.dtype = models.DTYPES[args.dtype]
    args.sizes = models.TINY if args.tiny else models.Sizes()
    return args


def main(argv=None, log=sys.stderr):
    args = parse_args(argv)
    place = join(args.backend)
    was_enabled = flaggems_exp.is_enabled()
    flaggems_exp.disable()  # eager is PyTorch's own kernels; gems enables ours per run
    try:
        return _run(args, place, log)
    finally:
        if was_enabled:
            flaggems_exp.enable()
        dist.destroy_process_group()


def _run(args, place, log):
    env = run.environment()
    lead = place.rank == 0
    rows = []
    for name in args.models:
        batch = args.batch or models.batch_size(name, "large", args.sizes)
        case = Case(name, place.world, place.backend, cases.dtype_name(args.dtype), batch,
                    args.steps)
        run_model(case, name, place, args)
        rows.append(case)
        if lead:
            print(f"  {name}: eager {models.shown(case.eager_ms, '.3f')} ms, gems "
                  f"{models.shown(case.gems_ms, '.3f')} ms, ratio "
                  f"{models.shown(case.ratio, '.2f')}, ok "
                  f"{case.ok}{'; ' + case.error if case.error else ''}", file=log, flush=True)
    if lead:
        out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="ddp-"))
        out.mkdir(parents=True, exist_ok=True)
        with (out / CSV_NAME).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(c.cells(env) for c in rows)
        text = report(rows, env, place, args)
        (out / REPORT_NAME).write_text(text)
        print(text)
        print(f"{out / CSV_NAME}, {out / REPORT_NAME}")
    return 0 if all(c.ok and not c.error for c in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
