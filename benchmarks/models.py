"""Real models, eager against ``flaggems_exp.use_gems()``: step time, outputs or gradients.

    python -m benchmarks.models                                   # every model, batch and mode
    python -m benchmarks.models --model transformer --batch large --mode training
    python -m benchmarks.models --tiny --steps 1                  # tiny shapes (the CPU run)
    python -m benchmarks.models --dtype bfloat16 --image 128 --out DIR

Each (model, batch, mode) case builds its model once (seeded) on ``flaggems_exp.device`` and
runs one step (inference: ``model.eval()`` and a ``torch.no_grad()`` forward; training:
``model.train()``, ``zero_grad(set_to_none=True)``, forward, loss, backward) with three
providers in this order: ``eager`` (eager_a), ``gems`` (the same step inside one
``use_gems()`` block), ``eager`` again (eager_b, for run-to-run noise), and that sequence
``--rounds`` times over (a shared host drifts in speed: each provider's steps are spread over
the whole case). Each provider warms up ``--warmup`` steps in the first round (the first is also
its check step) and one step in the others, then times ``--steps`` steps, each between two device
synchronizations; the median over all rounds is kept. ``host ms`` is the median time a step
takes to return, before its synchronization: the host's time to issue the step's work; where
it is close to the step's time the step is host-bound. The RNG is seeded before every step, so
dropout and stochastic depth draw the same masks in every provider.

Correctness: gems' outputs (inference) or loss and every parameter's gradient (training) against
eager_a's, next to eager_b's against eager_a's (the noise); ``ok`` when gems' max abs difference
is within 10× the noise or every tensor is within rtol/atol (1e-4/1e-5 for float32, 2e-2 for
bfloat16). ``ratio`` is eager's time over gems' (>= 1: gems is at least as fast), paired per
round: in each round the geometric mean of eager_a's and eager_b's median step, which bracket
gems' steps in time, over gems' median step; the median of the rounds' ratios. A drift of the
shared host within a case then falls on both sides of a ratio instead of on one provider.
``launches`` counts our kernel launches in one gems step; ``calls`` our ops' calls in another
(untimed) one, launching or not (an early return, a hand-over to PyTorch, a factory). Where
ratio < 1 on CUDA, one step of
each is profiled and its top kernels go into the report. ``models.csv`` and ``models.md`` go
to ``--out`` (default: a fresh temporary directory). A failing case records its error in its
row and the run goes on.
"""
import argparse
import collections
import contextlib
import copy
import csv
import math
import pathlib
import statistics
import sys
import tempfile
import time

import attrs
import torch
import torch.nn as nn
import torch.nn.functional as F

import flaggems_exp

from . import cases, run, timing

DEVICE = flaggems_exp.device
CUDA = timing.CUDA
BATCHES = ("small", "large")
MODES = ("inference", "training")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# (rtol, atol) of the floor under the noise test, per dtype
TOLERANCE = {torch.float32: (1e-4, 1e-5), torch.bfloat16: (2e-2, 2e-2)}
NOISE_FACTOR = 10
SEED = 0
TOP_KERNELS = 8
ENV_COLUMNS = ("device", "torch", "triton", "commit")
COLUMNS = ("model", "batch", "mode", "dtype", "inputs", "eager_ms", "eager_again_ms", "gems_ms",
           "ratio", "eager_host_ms", "gems_host_ms", "gems_diff", "eager_noise", "ok", "launches",
           "calls", "error", *ENV_COLUMNS)
CSV_NAME, REPORT_NAME = "models.csv", "models.md"


@attrs.frozen
class Sizes:
    """The shapes of every model: the defaults, or ``--tiny``'s for the CPU."""

    image: int = 224          # CNN inputs are image x image
    large_images: int = 64    # batch "large" of the CNNs
    large_sequences: int = 32  # batch "large" of the transformer
    dim: int = 256
    layers: int = 4
    heads: int = 4
    seq: int = 128
    vocab: int = 1000
    width: int = 16           # the conv net's first channel count


TINY = Sizes(image=32, large_images=2, large_sequences=2, dim=32, layers=1, heads=2, seq=16,
             vocab=64, width=4)
# torchvision's CNNs downsample 32×: below 64 their last BatchNorm would see one value per
# channel at batch 1 in training, which PyTorch refuses
TORCHVISION_MIN_IMAGE = 64


class Skip(Exception):
    """A model that cannot be built here (torchvision missing): printed, no rows."""


@attrs.frozen
class Built:
    """What a model function returns: the model, ``make_inputs(batch) -> (args, target)`` and
    ``loss_fn(output, target) -> scalar``."""

    model: nn.Module
    make_inputs: object
    loss_fn: object


def _generator(offset=1):
    return torch.Generator().manual_seed(SEED + offset)


def _images(n, size, dtype, classes=1000):
    """``n`` seeded images and class labels."""
    gen = _generator()
    x = torch.randn(n, 3, size, size, generator=gen)
    labels = torch.randint(classes, (n,), generator=gen)
    return (x.to(DEVICE, dtype),), labels.to(DEVICE)


def _classification(x, labels):
    return F.cross_entropy(x, labels)


# ---- 1, 2: torchvision's CNNs -------------------------------------------------------------
def _torchvision_models():
    try:
        import torchvision.models
    except Exception as exc:  # noqa: BLE001 - missing, or a build that does not match torch
        raise Skip(f"torchvision not importable ({type(exc).__name__}: {cases.one_line(exc, 160)});"
                   " pip install torchvision (the bench extra)") from exc
    return torchvision.models


def _torchvision(name, sizes, dtype):
    size = max(sizes.image, TORCHVISION_MIN_IMAGE)
    model = getattr(_torchvision_models(), name)(weights=None)
    return Built(model, lambda n: _images(n, size, dtype), _classification)


def mobilenet_v3_small(sizes, dtype):
    """torchvision's MobileNetV3-Small, untrained: hardswish, hardsigmoid (squeeze-excite)."""
    return _torchvision("mobilenet_v3_small", sizes, dtype)


def efficientnet_b0(sizes, dtype):
    """torchvision's EfficientNet-B0, untrained: silu, sigmoid (squeeze-excite)."""
    return _torchvision("efficientnet_b0", sizes, dtype)


# ---- 3: a decoder-only transformer --------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    """Causal softmax attention, written out."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        causal = torch.tril(torch.ones(s, s, dtype=torch.bool, device=x.device))
        scores = scores.masked_fill(~causal, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, s, d))


class MLP(nn.Module):
    """SiLU-gated: (silu(x @ W1) * (x @ W3)) @ W2."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = RMSNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = RMSNorm(dim), MLP(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, vocab, dim, layers, heads, seq):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(seq, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[:tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def transformer(sizes, dtype):
    """A small decoder-only transformer; cross-entropy on the next token."""
    model = Transformer(sizes.vocab, sizes.dim, sizes.layers, sizes.heads, sizes.seq)

    def make_inputs(n):
        tokens = torch.randint(sizes.vocab, (n, sizes.seq + 1), generator=_generator()).to(DEVICE)
        return (tokens[:, :-1],), tokens[:, 1:]

    def loss_fn(logits, targets):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return Built(model, make_inputs, loss_fn)


# ---- 4: a conv net of pads, pixel (un)shuffle, nearest upsampling; five losses -------------
class ConvNet(nn.Module):
    """replication pad -> conv -> pixel_unshuffle -> conv -> reflection pad -> conv -> nearest
    upsampling -> conv -> pixel_shuffle: N,3,H,W -> N,3,2H,2W.

    The reflection pad runs along W on an N,C*H,W view (``reflection_pad1d``), and the nearest
    upsampling on an N,C,1,H,W view with scale (1, 2, 2) (``upsample_nearest3d``): the 2-d
    forms, ``reflection_pad2d`` and ``upsample_nearest2d``, are not flaggems_exp ops."""

    def __init__(self, width):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3)                               # after a replicate pad
        self.conv2 = nn.Conv2d(4 * w, 2 * w, 3, padding=1)            # after pixel_unshuffle(2)
        self.conv3 = nn.Conv2d(2 * w, 2 * w, 3, padding=(1, 0))       # after a reflect pad of W
        self.upsample = nn.Upsample(scale_factor=(1, 2, 2), mode="nearest")
        self.conv4 = nn.Conv2d(2 * w, 12, 3, padding=1)               # before pixel_shuffle(2)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(F.pad(x, (1, 1, 1, 1), mode="replicate")), 0.1)
        h = F.leaky_relu(self.conv2(F.pixel_unshuffle(h, 2)), 0.1)
        n, c, hh, ww = h.shape
        h = F.pad(h.reshape(n, c * hh, ww), (1, 1), mode="reflect").view(n, c, hh, ww + 2)
        h = F.hardtanh(self.conv3(h))
        h = self.upsample(h.unsqueeze(2)).squeeze(2)
        return F.pixel_shuffle(self.conv4(h), 2)


def convnet(sizes, dtype):
    """ConvNet; the loss is the sum of smooth_l1, huber, soft_margin, hinge_embedding and
    margin_ranking losses of its output against fixed random targets (signs in {-1, 1})."""
    size = sizes.image

    def make_inputs(n):
        gen = _generator()
        x = torch.randn(n, 3, size, size, generator=gen)
        out = (n, 3, 2 * size, 2 * size)
        target = torch.randn(out, generator=gen)
        sign = torch.randint(2, out, generator=gen) * 2 - 1
        rank = torch.randint(2, out[:1] + out[2:], generator=gen) * 2 - 1
        return (x.to(DEVICE, dtype),), (target.to(DEVICE, dtype), sign.to(DEVICE, dtype),
                                        rank.to(DEVICE, dtype))

    def loss_fn(y, targets):
        target, sign, rank = targets
        return (F.smooth_l1_loss(y, target, beta=0.5) + F.huber_loss(y, target, delta=0.5)
                + F.soft_margin_loss(y, sign) + F.hinge_embedding_loss(y, sign, margin=1.0)
                + F.margin_ranking_loss(y[:, 0], y[:, 1], rank, margin=0.1))
    return Built(ConvNet(sizes.width), make_inputs, loss_fn)


MODELS = {"mobilenet_v3_small": mobilenet_v3_small, "efficientnet_b0": efficientnet_b0,
          "transformer": transformer, "convnet": convnet}


def batch_size(name, batch, sizes):
    if batch == "small":
        return 1
    return sizes.large_sequences if name == "transformer" else sizes.large_images


# ---- one case -----------------------------------------------------------------------------
def make_step(model, args, target, loss_fn, mode):
    """One step: returns the tensors to compare (inference: the output; training: the loss and
    every parameter's gradient, in ``named_parameters`` order)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if mode == "inference":
        def step():
            torch.manual_seed(SEED)
            with torch.no_grad():
                return [model(*args)]
    else:
        def step():
            model.zero_grad(set_to_none=True)
            torch.manual_seed(SEED)
            loss = loss_fn(model(*args), target)
            loss.backward()
            return [loss.detach()] + [p.grad for p in params]
    return step


def bracketed_ratio(rounds):
    """eager's speed over gems' from ``rounds`` of (eager_a, gems, eager_b) median step times,
    eager_a and eager_b taken just before and after gems: per round the geometric mean of the
    two eager times over gems' time, then the median over rounds."""
    return statistics.median(math.sqrt(a * b) / g for a, g, b in rounds)


def time_provider(step, context, warmup, steps, count_launches=False):
    """(results of the first warm-up step, ms of each of ``steps`` timed steps, ms each took to
    return before its synchronization, our launches per op name in the last warm-up step, or
    None), all inside one ``context()``."""
    with context():
        results = step()
        timing.synchronize()
        launches = None
        for _ in range(1, warmup):
            before = dict(flaggems_exp.LAUNCHES)
            step()
            timing.synchronize()
            launches = _launched_since(before)
        if count_launches and launches is None:  # --warmup 1: one more step to count
            before = dict(flaggems_exp.LAUNCHES)
            step()
            timing.synchronize()
            launches = _launched_since(before)
        times, issued = [], []
        for _ in range(steps):
            timing.synchronize()
            start = time.perf_counter()
            step()
            returned = time.perf_counter()
            timing.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
            issued.append((returned - start) * 1e3)
    return results, times, issued, launches


def calls_in_step(step):
    """{op name: calls} of our ops in one step inside ``use_gems()``, each call counted on its
    way in (``Op.serve``, which direct calls and the dispatcher's twins take, wrapped for the
    step only), or replayed by a C++ route (``runtime/native_dispatch.py``)."""
    from flaggems_exp import dispatch
    from flaggems_exp.families.base import Op
    from flaggems_exp.runtime import native_dispatch
    called = collections.Counter()
    plain = Op.serve

    def counted(self, /, *args, **kwargs):
        called[self.name] += 1
        return plain(self, *args, **kwargs)

    with flaggems_exp.use_gems():
        Op.serve = Op.__call__ = dispatch._HandsOver.__call__ = counted
        try:
            step()
            timing.synchronize()
        finally:
            Op.serve = Op.__call__ = dispatch._HandsOver.__call__ = plain
        for qualname, (_, replays, _) in native_dispatch.stats().items():
            if replays:
                called[flaggems_exp.REGISTRY[qualname.split(".")[0]].name] += replays
    return dict(called)


def _launched_since(before):
    """{op name: launches} since the snapshot ``before`` of ``flaggems_exp.LAUNCHES``."""
    now = dict(flaggems_exp.LAUNCHES)
    return {name: n - before.get(name, 0) for name, n in now.items() if n != before.get(name, 0)}


def max_abs_diff(xs, ys):
    """The largest absolute difference over paired tensors (inf where shapes differ or only
    one side is None or NaN)."""
    worst = 0.0
    for x, y in zip(xs, ys, strict=True):
        if x is None or y is None:
            if x is not y:
                return math.inf
            continue
        if x.shape != y.shape:
            return math.inf
        d = (x.double() - y.double()).abs()
        d = torch.where(torch.isnan(x) & torch.isnan(y), 0.0, d)  # NaN on both sides agrees
        d = torch.nan_to_num(d, nan=math.inf)
        if d.numel():
            worst = max(worst, d.max().item())
    return worst


def within_tolerance(xs, ys, dtype):
    rtol, atol = TOLERANCE[dtype]
    return all((x is None and y is None) or (
        x is not None and y is not None and x.shape == y.shape
        and torch.allclose(x.double(), y.double(), rtol=rtol, atol=atol, equal_nan=True))
        for x, y in zip(xs, ys, strict=True))


@attrs.define
class Case:
    model: str
    batch: str
    mode: str
    dtype: str
    inputs: str = ""
    eager_ms: object = None
    eager_again_ms: object = None
    gems_ms: object = None
    ratio: object = None
    eager_host_ms: object = None
    gems_host_ms: object = None
    gems_diff: object = None
    eager_noise: object = None
    ok: object = None
    launches: object = None
    error: str = ""
    calls: object = None
    launched: dict = attrs.field(factory=dict)  # op name -> launches in one gems step
    called: dict = attrs.field(factory=dict)    # op name -> calls in one gems step
    profiles: dict = attrs.field(factory=dict)  # provider -> [(name, count, total µs)]

    def cells(self, env):
        return case_cells(self, COLUMNS, env)


def case_cells(case, columns, env):
    """A case's CSV row: its own columns, then the environment's."""
    values = {c: getattr(case, c) for c in columns if c not in ENV_COLUMNS}
    values.update(zip(ENV_COLUMNS, (env.gpu, env.torch, env.triton, env.commit)))
    return {k: run.csv_cell(v) for k, v in values.items()}


def run_case(case, built, batch, dtype, args):
    """Fills ``case`` in place; stops at the first failure, which goes into ``case.error``
    (what was measured before it stays)."""
    stage = "inputs"
    try:
        model = built.model
        if case.mode == "inference":
            model.eval()
        else:
            model.train()
        inputs, target = built.make_inputs(batch)
        case.inputs = " ".join("x".join(map(str, a.shape)) for a in inputs)
        step = make_step(model, inputs, target, built.loss_fn, case.mode)
        providers = {"eager": contextlib.nullcontext, "gems": flaggems_exp.use_gems,
                     "eager again": contextlib.nullcontext}
        firsts, times, issued = {}, {p: [] for p in providers}, {p: [] for p in providers}
        round_times = []  # (eager, gems, eager again) medians of each round
        for round_ in range(args.rounds):
            medians = {}
            for provider, context in providers.items():
                stage = provider if args.rounds == 1 else f"{provider} (round {round_ + 1})"
                results, took, returned, launched = time_provider(
                    step, context, args.warmup if round_ == 0 else 1, args.steps,
                    count_launches=provider == "gems" and round_ == 0)
                firsts.setdefault(provider, results)
                times[provider] += took
                medians[provider] = statistics.median(took)
                issued[provider] += returned
                if provider == "gems" and launched is not None:
                    case.launched, case.launches = launched, sum(launched.values())
            round_times.append((medians["eager"], medians["gems"], medians["eager again"]))
        eager_a, gems, eager_b = firsts["eager"], firsts["gems"], firsts["eager again"]
        stage = "calls"
        case.called = calls_in_step(step)
        case.calls = sum(case.called.values())
        case.eager_ms, case.gems_ms, case.eager_again_ms = (
            statistics.median(times[p]) for p in providers)
        case.ratio = bracketed_ratio(round_times)
        case.eager_host_ms = statistics.median(issued["eager"])
        case.gems_host_ms = statistics.median(issued["gems"])
        stage = "compare"
        case.gems_diff = max_abs_diff(gems, eager_a)
        case.eager_noise = max_abs_diff(eager_b, eager_a)
        case.ok = (case.gems_diff <= NOISE_FACTOR * case.eager_noise
                   or within_tolerance(gems, eager_a, dtype))
        del eager_a, eager_b, gems
        if args.profile == "always" or (args.profile == "auto" and CUDA and case.ratio < 1.0):
            stage = "profile"
            case.profiles = {"eager": profile_step(step, contextlib.nullcontext),
                             "gems": profile_step(step, flaggems_exp.use_gems)}
    except Exception as exc:  # noqa: BLE001 - recorded in the row, the run goes on
        case.error = f"{stage}: {cases.error_line(exc)}"


def profile_step(step, context):
    """The top kernels of one step (after one untimed step): (name, count, total µs), on CUDA
    its device kernels and copies, on the CPU (``--profile always``) the ops by self time."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if CUDA else [])
    with context():
        step()
        timing.synchronize()
        with profile(activities=activities) as prof:
            step()
            timing.synchronize()
    totals = {}
    for event in prof.events():
        if CUDA:
            if event.device_type != DeviceType.CUDA:
                continue
            us = event.time_range.elapsed_us()
        else:
            us = event.self_cpu_time_total
        count, total = totals.get(event.name, (0, 0.0))
        totals[event.name] = (count + 1, total + us)
    top = sorted(totals.items(), key=lambda kv: -kv[1][1])[:TOP_KERNELS]
    return [(name, count, total) for name, (count, total) in top]


# ---- the report ---------------------------------------------------------------------------
def shown(value, spec):
    """A figure for a table: a dash where nothing was measured."""
    return "–" if value is None else format(value, spec)


def table(rows):
    lines = ["| model | batch | mode | dtype | inputs | eager ms | eager again ms | gems ms | "
             "ratio | eager host ms | gems host ms | gems diff | eager noise | ok | launches | "
             "calls | error |",
             "|" + " --- |" * 17]
    for c in rows:
        error = c.error.replace("|", "\\|")
        lines.append(
            f"| {c.model} | {c.batch} | {c.mode} | {c.dtype} | {c.inputs or '–'} | "
            f"{shown(c.eager_ms, '.3f')} | {shown(c.eager_again_ms, '.3f')} | "
            f"{shown(c.gems_ms, '.3f')} | {shown(c.ratio, '.2f')} | "
            f"{shown(c.eager_host_ms, '.3f')} | {shown(c.gems_host_ms, '.3f')} | "
            f"{shown(c.gems_diff, '.3g')} | "
            f"{shown(c.eager_noise, '.3g')} | {'–' if c.ok is None else c.ok} | "
            f"{'–' if c.launches is None else c.launches} | "
            f"{'–' if c.calls is None else c.calls} | {error} |")
    return "\n".join(lines)


def report(rows, skipped, env, args):
    rtol, atol = TOLERANCE[args.dtype]
    lines = ["# Models: eager vs flaggems_exp", "",
             f"{env.gpu}, torch {env.torch}, triton {env.triton}, commit {env.commit}; "
             f"median of {args.steps} steps in each of {args.rounds} rounds (eager, gems, eager "
             f"again), after {args.warmup} warm-up steps"
             f"{', tiny shapes' if args.tiny else ''}. ratio: per round, the geometric mean of "
             "eager's and eager again's median step over gems' (they bracket it), the median of "
             "the rounds' ratios; ok: gems diff "
             f"<= {NOISE_FACTOR}× eager noise, or within rtol {rtol:g} / atol {atol:g}.", "",
             table(rows), ""]
    if skipped:
        lines += ["Skipped:", *(f"- {name}: {why}" for name, why in skipped.items()), ""]
    launched = [c for c in rows if c.launched]
    if launched:
        for title, counts in (("Our launches in one gems step", "launched"),
                              ("Our calls in one gems step (launching or not)", "called")):
            lines += [f"## {title}", ""]
            lines += [f"- {c.model} {c.batch} {c.mode}: " + ", ".join(
                f"{name} {n}" for name, n in sorted(getattr(c, counts).items(),
                                                    key=lambda kv: (-kv[1], kv[0])))
                for c in launched]
            lines.append("")
    for c in rows:
        if not c.profiles:
            continue
        what = "CUDA kernels by total time" if CUDA else "CPU ops by self time"
        lines += [f"## Profile: {c.model} {c.batch} {c.mode} {c.dtype} (ratio "
                  f"{shown(c.ratio, '.2f')})", ""]
        for provider, top in c.profiles.items():
            lines += [f"{provider}: top {len(top)} {what}, one step", "",
                      "| name | count | total µs |", "| --- | --- | --- |"]
            lines += [f"| `{_short(name)}` | {count} | {total:.1f} |" for name, count, total in top]
            lines.append("")
    return "\n".join(lines)


def _short(name, limit=100):
    name = name.replace("|", "\\|").replace("`", "'")
    return name if len(name) <= limit else name[:limit - 3] + "..."


# ---- the run ------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], choices=list(MODELS),
                        help="a model (repeatable); default: all")
    parser.add_argument("--batch", action="append", default=[], choices=BATCHES,
                        help="small (1) or large (64 images, 32 sequences; --tiny: 2) "
                             "(repeatable); default: both")
    parser.add_argument("--mode", action="append", default=[], choices=MODES,
                        help="inference or training (repeatable); default: both")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES),
                        help="the model's and the images' dtype (default float32)")
    parser.add_argument("--steps", type=int, default=20, metavar="N",
                        help="timed steps per provider; the median is kept (default 20)")
    parser.add_argument("--rounds", type=int, default=3, metavar="N",
                        help="rounds of the three providers, alternating (default 3)")
    parser.add_argument("--warmup", type=int, default=None, metavar="N",
                        help="warm-up steps per provider, the first also its check step "
                             "(default 3; --tiny: 1)")
    parser.add_argument("--image", type=int, default=None, metavar="N",
                        help="the CNNs' image size (default 224; --tiny: 32; torchvision's "
                             f"models take at least {TORCHVISION_MIN_IMAGE}; the conv net wants a "
                             "multiple of 2)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny shapes for the CPU: images 32, transformer dim 32, 1 layer, "
                             "seq 16, batch large = 2")
    parser.add_argument("--profile", default="auto", choices=("auto", "always", "never"),
                        help="profile one step of each provider: auto = where ratio < 1 on CUDA")
    parser.add_argument("--out", type=pathlib.Path, default=None, metavar="DIR",
                        help=f"where {CSV_NAME} and {REPORT_NAME} go (default: a fresh "
                             "temporary directory)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or (args.warmup is not None and args.warmup < 1):
        parser.error("--steps, --rounds and --warmup take a positive count")
    args.models = list(dict.fromkeys(args.model)) or list(MODELS)
    args.batches = list(dict.fromkeys(args.batch)) or list(BATCHES)
    args.modes = list(dict.fromkeys(args.mode)) or list(MODES)
    args.dtype = DTYPES[args.dtype]
    args.warmup = args.warmup or (1 if args.tiny else 3)
    sizes = TINY if args.tiny else Sizes()
    args.sizes = attrs.evolve(sizes, image=args.image) if args.image else sizes
    return args


def main(argv=None, log=sys.stderr):
    """The command line: every case, the CSV row by row, then the report (also printed)."""
    args = parse_args(argv)
    was_enabled = flaggems_exp.is_enabled()
    flaggems_exp.disable()  # eager is PyTorch's own kernels; gems enables ours per provider
    try:
        return _run(args, log)
    finally:
        if was_enabled:
            flaggems_exp.enable()


def _run(args, log):
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="models-"))
    out.mkdir(parents=True, exist_ok=True)
    env = run.environment()
    dtype_name = cases.dtype_name(args.dtype)
    start = time.perf_counter()
    print(f"models on {env.gpu} ({DEVICE}): {', '.join(args.models)}; batch "
          f"{', '.join(args.batches)}; {', '.join(args.modes)}; {dtype_name}", file=log, flush=True)
    rows, skipped = [], {}
    with (out / CSV_NAME).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for name in args.models:
            try:
                torch.manual_seed(SEED)
                built = MODELS[name](args.sizes, args.dtype)
                built = attrs.evolve(built, model=built.model.to(DEVICE, args.dtype))
                initial = copy.deepcopy(built.model.state_dict())
                error = ""
            except Skip as exc:
                skipped[name] = str(exc)
                print(f"  {name}: skipped: {exc}", file=log, flush=True)
                continue
            except Exception as exc:  # noqa: BLE001 - recorded in each of its rows
                built, error = None, f"build: {cases.error_line(exc)}"
            for batch in args.batches:
                for mode in args.modes:
                    case = Case(name, batch, mode, dtype_name, error=error)
                    case_start = time.perf_counter()
                    if built is not None:
                        built.model.load_state_dict(initial)  # each case starts from the same model
                        run_case(case, built, batch_size(name, batch, args.sizes), args.dtype, args)
                    writer.writerow(case.cells(env))
                    f.flush()  # a killed run keeps what it measured
                    rows.append(case)
                    seconds = time.perf_counter() - case_start
                    print(f"  {name} {batch} {mode}: eager {shown(case.eager_ms, '.3f')} ms, gems "
                          f"{shown(case.gems_ms, '.3f')} ms, ratio {shown(case.ratio, '.2f')}, ok "
                          f"{case.ok}, launches {case.launches} ({seconds:.1f} s)"
                          f"{'; ' + case.error if case.error else ''}", file=log, flush=True)
            del built
            if CUDA:
                torch.cuda.empty_cache()
    text = report(rows, skipped, env, args)
    (out / REPORT_NAME).write_text(text)
    print(text)
    print(f"{len(rows)} cases in {time.perf_counter() - start:.0f} s: {out / CSV_NAME}, "
          f"{out / REPORT_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
