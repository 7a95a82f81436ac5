"""A pointwise op's time under other program shapes: the elements a program takes and its warps
(``PointwiseOp.block``, ``PointwiseOp.warps``), at the runner's own inputs; a reduction op's under
other tiles: rows a program, tile length and warps (``ReductionOp.tile``).

    python -m benchmarks.programs --op digamma --dtype float32 --size L
    python -m benchmarks.programs --op special_i1 --op i0 --dtype float32 --shape 1024/4 --shape 256/1
    python -m benchmarks.programs --op hardtanh_ --dtype float16 --size M --kernel-time
    python -m benchmarks.programs --op _log_softmax_backward_data --shape 1x8192/16 --shape 2x4096/8

For each op and dtype: eager's time, then ours under each shape (ELEMENTS/WARPS; default
``SHAPES``; a reduction op's, ROWSxLENGTH/WARPS, given), the op's plans dropped before each so
that its launch is made anew, with whether the result is bit-equal to eager's (any NaN equal
to any NaN); with ``--kernel-time`` also each one's kernel time (``benchmarks.kernel_time``:
the durations of a call's kernels by the profiler, launch latency and the events' own spread
left out; what decides at M, where a call's event time moves by about half a µs between
measurements). An in-place op is timed through the declarations of the op it derives from; a reduced loss's partial sums keep their own block
(its reduction='none' takes the shape). A shape's elements are a power of two; a program of one
warp reduces across its threads alone, so the block-wide branches of digamma, erfinv and the
Bessel functions (``tl.max`` of a condition) wait at no barrier there. A call the op looks
its results up for (``PointwiseOp.looks_up``: its dtype and size) gets no rows: a gather,
whatever the shape. Timing as the runner's
(``timing.bench``: do_bench quantiles, L2 flushed); without a GPU the same calls run
interpreted, which checks the tool and times nothing. Prints a table; ``--out`` writes it as
a CSV too.
"""
import argparse
import csv
import math
import pathlib

import torch

from flaggems_exp import REGISTRY, testing
from flaggems_exp.families.inplace import InplaceOp
from flaggems_exp.families.pointwise import PointwiseOp
from flaggems_exp.families.reduction import ReductionOp
from flaggems_exp.runtime.plans import PlanCache

from . import cases, timing

SHAPES = ((1024, 4), (1024, 8), (512, 4), (256, 2), (256, 1), (128, 1))
COLUMNS = ("op", "dtype", "size", "shape", "p20_ms", "p50_ms", "p80_ms", "kernel_us",
           "same_as_eager")
KERNEL_TIME_CALLS = 30


def parse_shape(text):
    """'ELEMENTS/WARPS' -> (elements, warps), a pointwise program: elements a power of two, at
    least a thread each; 'ROWSxLENGTH/WARPS' -> (rows, length, warps), a reduction's tile:
    powers of two, rows x length at least a thread each."""
    sizes, _, warps = text.partition("/")
    try:
        sizes, warps = tuple(int(n) for n in sizes.split("x")), int(warps)
    except ValueError:
        sizes = ()
    if (len(sizes) not in (1, 2) or any(n <= 0 or n & (n - 1) for n in sizes)
            or warps not in (1, 2, 4, 8, 16, 32) or warps == 32 and len(sizes) == 1
            or math.prod(sizes) < 32 * warps):
        raise argparse.ArgumentTypeError(
            f"{text}: ELEMENTS/WARPS (a pointwise program) or ROWSxLENGTH/WARPS (a reduction's "
            "tile), powers of two, at least 32 elements a warp; warps 1, 2, 4, 8 or 16 (32 "
            "for a tile)")
    return (*sizes, warps)


def shape_name(shape):
    """(elements, warps) -> 'ELEMENTS/WARPS'; (rows, length, warps) -> 'ROWSxLENGTH/WARPS'."""
    return "x".join(str(n) for n in shape[:-1]) + f"/{shape[-1]}"


def _declared_names(target):
    """The declarations a shape sets on ``target``, in the order of its numbers."""
    return ("tile",) if isinstance(target, ReductionOp) else ("block", "warps")


def _declared_values(target, shape):
    return (shape,) if isinstance(target, ReductionOp) else shape


def declaring(op):
    """The PointwiseOp whose ``block`` and ``warps`` the op's launches take, or the
    ReductionOp whose ``tile``."""
    target = op.twin if isinstance(op, InplaceOp) else op
    if not isinstance(target, (PointwiseOp, ReductionOp)):
        raise SystemExit(f"{op.name}: not a pointwise or reduction op (its family: "
                         f"{target.family})")
    return target


def _fitting(target, shapes):
    """``shapes`` of ``target``'s kind (a reduction takes tiles, a pointwise op programs)."""
    size = 3 if isinstance(target, ReductionOp) else 2
    if any(len(shape) != size for shape in shapes):
        raise SystemExit(f"{target.name}: its shapes are "
                         + ("ROWSxLENGTH/WARPS" if size == 3 else "ELEMENTS/WARPS"))
    return shapes


def same_bits(a, b):
    """The same dtype, shape and values (any NaN equal to any NaN; -0.0 not equal to 0.0):
    ``testing.assert_close``, exact, signed zeros compared."""
    try:
        testing.assert_close(a, b, exact=True, signed_zeros=True)
    except AssertionError:
        return False
    return True


def measure(op, dtype, size, shapes, device, kernel_time=False):
    """Rows (dicts of ``COLUMNS``) of ``op`` in ``dtype`` at ``size``: eager's, then one per
    shape; none where the op looks its results up (a table's gather, whatever the shape:
    ``PointwiseOp.looks_up``). With ``kernel_time``, each row's kernel time too (CUDA only).
    The op's declarations are restored afterwards, its plans dropped."""
    target = declaring(op)
    shapes = _fitting(target, shapes)
    baseline, args, kwargs = cases.runner_inputs(op, dtype, size, device)
    if isinstance(target, PointwiseOp) and target.looks_up(dtype, args[0].numel()):
        return []
    setup = None
    if cases.mutates_self(op):
        first = args[0].clone()

        def setup():
            args[0].copy_(first)
    row = {"op": op.name, "dtype": cases.dtype_name(dtype), "size": size}
    if setup:
        setup()
    reference = baseline.fn(*args, **kwargs)
    reference = reference.clone() if reference is args[0] else reference
    calls = [("eager", lambda: baseline.fn(*args, **kwargs))]
    calls += [(shape_name(shape), _shaped(op, target, shape, args, kwargs)) for shape in shapes]
    names = _declared_names(target)
    declared = [target.__dict__.get(name) for name in names]
    rows = []
    try:
        for shape, call in calls:
            if setup:
                setup()
            same = shape == "eager" or same_bits(call(), reference)
            rows.append(dict(row, shape=shape, same_as_eager=same,
                             **_quantiles(timing.bench(call, setup))))
        if kernel_time:
            from .kernel_time import profiled_calls
            measured = profiled_calls([(call, setup) for _, call in calls], KERNEL_TIME_CALLS)
            for r, (kernel_us, _) in zip(rows, measured):
                r["kernel_us"] = kernel_us
    finally:
        for name, value in zip(names, declared):
            if value is None:
                target.__dict__.pop(name, None)
            else:
                setattr(target, name, value)
        _drop_plans(op, target)
    return rows


def _shaped(op, target, shape, args, kwargs):
    """``op(*args, **kwargs)`` under the program shape or tile ``shape``: the first call of a
    run of them declares it and drops the plans made under another, the rest replay theirs."""
    names, values = _declared_names(target), tuple(_declared_values(target, shape))

    def call():
        if tuple(target.__dict__.get(name) for name in names) != values:
            for name, value in zip(names, values):
                setattr(target, name, value)
            _drop_plans(op, target)
        return op(*args, **kwargs)
    return call


def _drop_plans(op, target):
    """Forget the plans of ``op`` and of the op declaring its shape (the same for most)."""
    for o in {id(op): op, id(target): target}.values():
        o.plans = PlanCache()


def _quantiles(ms):
    return dict(zip(("p20_ms", "p50_ms", "p80_ms"), ms))


def table(rows):
    """One line per op, dtype and size: eager's p50 in µs, then each shape's (* where its
    result differs from eager's), each with its kernel time in brackets where measured."""
    lines, key = [], None
    for r in rows:
        if (r["op"], r["dtype"], r["size"]) != key:
            key = (r["op"], r["dtype"], r["size"])
            lines.append(f"{r['op']} {r['dtype']} {r['size']}:")
        mark = "" if r["same_as_eager"] else " *differs*"
        kernel = f" ({r['kernel_us']:.2f})" if r.get("kernel_us") is not None else ""
        lines[-1] += f"  {r['shape']} {r['p50_ms'] * 1e3:.1f}{kernel}{mark}"
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.programs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--op", action="append", required=True, metavar="NAME")
    parser.add_argument("--dtype", action="append", default=[], metavar="NAME",
                        help="float16, bfloat16, float32... (default: the op's float dtypes)")
    parser.add_argument("--size", default="L", choices=cases.SIZES)
    parser.add_argument("--shape", action="append", type=parse_shape, default=[],
                        metavar="ELEMENTS/WARPS", help="or ROWSxLENGTH/WARPS for a reduction op; "
                        f"default: {' '.join(shape_name(s) for s in SHAPES)}")
    parser.add_argument("--kernel-time", action="store_true",
                        help="also each row's kernel time by the profiler (needs CUDA)")
    parser.add_argument("--out", type=pathlib.Path, help="a CSV of the rows")
    args = parser.parse_args(argv)
    if args.kernel_time and not timing.CUDA:
        parser.error("--kernel-time needs CUDA: without it the profiler records no kernels")
    device = "cuda" if timing.CUDA else "cpu"
    rows = []
    for name in args.op:
        if name not in REGISTRY:
            parser.error(f"no op {name}")
        op = REGISTRY[name]
        _fitting(declaring(op), args.shape or SHAPES)
        for dtype in cases.op_dtypes(op, [getattr(torch, d) for d in args.dtype] or None):
            measured = measure(op, dtype, args.size, args.shape or SHAPES, device,
                               args.kernel_time)
            rows += measured
            print(table(measured) if measured else
                  f"{name} {cases.dtype_name(dtype)}: looked up, no program shape applies",
                  flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
