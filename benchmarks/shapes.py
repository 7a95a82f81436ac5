"""One op's call at shapes the runner's sizes do not cover, timed as the runner times it.

    python -m benchmarks.shapes _safe_softmax --shape 8192x8192 --shape 4096x16384 --args=-1
    python -m benchmarks.shapes _safe_softmax --shape 8x4194304 --args=-1 \
        --providers gems,eager,compile
    python -m benchmarks.shapes _log_softmax_backward_data --inputs 2 --shape 3355x20000 \
        --dtype float32 --args=-1,torch.float32

Each (shape, dtype) gets ``--inputs`` tensors drawn from a seeded normal distribution on the
benchmark's device, then the positional ``--args`` (Python literals and dtypes such as
``torch.float32``, comma-separated); each provider's call (``gems`` by default; ``eager`` and
``compile`` as the runner makes them, on the same inputs) is timed by ``timing.bench``
(``do_bench``'s quantiles, L2 flushed) and printed as one line of p50, p20 and p80 in µs. To
set one tree against another, run it from each tree on the same machine, one after the other.
"""
import argparse
import ast

import torch

import flaggems_exp
from flaggems_exp import REGISTRY

from . import cases, providers, timing

_PROVIDERS = ("gems", "eager", "compile")  # gems_dispatch is the runner's, at S


def measure(op_name, shape, dtype, inputs=1, args=(), provider="gems"):
    """(p20, p50, p80) in µs of ``provider``'s call of ``op_name`` on ``inputs`` seeded normal
    tensors of ``shape`` and ``dtype``, then ``args``."""
    torch.manual_seed(0)
    tensors = tuple(torch.randn(shape, dtype=dtype, device=flaggems_exp.device)
                    for _ in range(inputs))
    op = REGISTRY[op_name]
    call_args = (*tensors, *args)
    baseline = (None if provider == "gems"
                else cases.resolve_baseline(op, call_args, {}))
    compiled = (providers.compile_eager(baseline.fn) if provider == "compile" else None)
    fn = providers.make(provider, op, baseline, compiled).fn
    call = (lambda: fn(*call_args))
    call()  # the first call compiles (Triton's kernel, or torch.compile's), outside the timing
    return tuple(ms * 1e3 for ms in timing.bench(call))


def _arguments(text):
    """The positional arguments ``text`` names: Python literals, and dtypes as ``torch.NAME``."""
    def value(node):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "torch"
                and isinstance(getattr(torch, node.attr, None), torch.dtype)):
            return getattr(torch, node.attr)
        return ast.literal_eval(node)
    return tuple(value(node) for node in ast.parse(f"({text},)", mode="eval").body.elts)


def _shape(text):
    return tuple(int(n) for n in text.split("x"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("op", help="a registered op name")
    parser.add_argument("--shape", action="append", type=_shape, required=True,
                        help="a shape such as 8192x8192 (repeatable)")
    parser.add_argument("--dtype", action="append",
                        help="a dtype (repeatable); default: float16, bfloat16, float32")
    parser.add_argument("--inputs", type=int, default=1, help="tensor inputs (default 1)")
    parser.add_argument("--args", default="",
                        help="positional arguments after the tensors, as Python literals and "
                             "torch dtypes: -1,torch.float32")
    parser.add_argument("--providers", default="gems",
                        help="comma-separated: gems, eager, compile (default gems)")
    options = parser.parse_args(argv)
    wanted = options.providers.split(",")
    unknown = set(wanted) - set(_PROVIDERS)
    if unknown:
        parser.error(f"unknown providers {', '.join(sorted(unknown))}; known: "
                     + ", ".join(_PROVIDERS))
    if "compile" in wanted:
        providers.configure_dynamo()  # a compile per (shape, dtype), none past Dynamo's limit
    args = _arguments(options.args) if options.args else ()
    for shape in options.shape:
        for name in options.dtype or ("float16", "bfloat16", "float32"):
            for provider in wanted:
                p20, p50, p80 = measure(options.op, shape, getattr(torch, name),
                                        options.inputs, args, provider)
                print(f"{options.op} {'x'.join(map(str, shape))} {name} {provider}: "
                      f"p50 {p50:.2f} µs (p20 {p20:.2f}, p80 {p80:.2f})", flush=True)


if __name__ == "__main__":
    main()
