"""Compile the launches of one op call for an sm_90 GPU, on a machine without one, and count what
their PTX does: the memory instructions (16-byte vector or narrower), the exponentials, fused
multiply-adds, correctly rounded divisions and reciprocals, selects, warp votes, barriers,
branches on a predicate, conversions from float64, approximate instructions in their flushing
and non-flushing forms, and instructions that flush subnormals; with ``--machine-code``, also of
the machine code ptxas makes of it, its instructions, the registers a thread takes and the
loads issued before the first warp shuffle (two more tools run on each launch: asked for where
a test reads them).

    python tests/ptx_census.py [--machine-code] CASE [CASE ...]

A case is a call at a benchmark shape (``CASES``); each of its launches prints one JSON line:
the case, the kernel's name, its grid, warps and integer or boolean constexprs, and the census.
The op runs its full path on CPU tensors (only their dtypes, shapes and alignment matter to a
compilation), each launch replaced by ``JITFunction.warmup`` as in ``compile_check.py``. The
tests read these lines (``compiled_launches``) to pin down how a skeleton compiles where only
the GPU could time it.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

_SQUARE = (8192, 8192)


def _cases(torch):
    """Case name -> (op name, its positional arguments): float16 at the benchmarks' L shape
    unless the name says otherwise."""
    def half():
        return torch.empty(_SQUARE, dtype=torch.float16)

    def softmax(shape, dtype=torch.float16):
        return "_safe_softmax", (torch.empty(shape, dtype=dtype), -1)

    def softmax_backward(shape, dtype=torch.float16):
        return "_log_softmax_backward_data", (
            torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype), -1, dtype)
    return {
        "softmax_last_dim": softmax(_SQUARE),
        "softmax_last_dim_bfloat16": softmax(_SQUARE, torch.bfloat16),
        "softmax_last_dim_float32": softmax(_SQUARE, torch.float32),
        # float16 read to write float32 (PyTorch's half_to_float): rows of 8192 in one tile
        "softmax_last_dim_half_to_float": ("_safe_softmax", (half(), -1, torch.float32)),
        # rows of 16384: one pass, 32 elements a thread
        "softmax_rows_of_16384": softmax((4096, 16384)),
        # rows read twice, enough of them for a program each (fewer are split across programs)
        "softmax_long_rows": softmax((512, 65536)),
        "softmax_long_rows_bfloat16": softmax((512, 65536), torch.bfloat16),
        # few very long rows: each split across programs, two launches
        "softmax_few_long_rows": softmax((8, 4194304)),
        "softmax_few_long_rows_bfloat16": softmax((8, 4194304), torch.bfloat16),
        # rows PyTorch's softmax gives a warp each: summed in its lanes' order
        "softmax_rows_of_1024": softmax((65536, 1024)),
        "softmax_rows_of_2048": softmax((32768, 2048)),
        # not of whole stretches of 32: the second half of them masked
        "softmax_rows_of_1000": softmax((65536, 1000)),
        "softmax_rows_of_2000": softmax((32768, 2000)),
        "log_softmax_backward_last_dim": softmax_backward(_SQUARE),
        # rows of a length that is not a multiple of 16 (the ordered launch's sums of two)
        "log_softmax_backward_rows_of_3548_float32": softmax_backward((1024, 3548), torch.float32),
        # rows PyTorch gives a warp (of up to 1024 elements): held in its lanes' order
        "log_softmax_backward_rows_of_1024": softmax_backward((65536, 1024)),
        # rows not of whole 16-byte vectors (PyTorch's plain block kernel): one tile, x and y
        "log_softmax_backward_rows_of_1100": softmax_backward((65536, 1100)),
        "trace": ("trace", (half(),)),
        # rows longer than a tile: read twice, statistics then output
        "log_softmax_backward_long_rows": softmax_backward((512, 65536)),
        "log_softmax_backward_few_long_rows": softmax_backward((8, 4194304)),
        # one value for a diagonal of 20000, longer than a tile: each tile read once (the
        # tensor is never filled: the cases compile, nothing runs)
        "trace_long_diagonal": ("trace", (torch.empty((20000, 20000), dtype=torch.float16),)),
        "huber_loss_mean": ("huber_loss", (half(), half())),
        "margin_ranking_loss_mean": ("margin_ranking_loss", (half(), half(), half())),
        "smooth_l1_loss_mean": ("smooth_l1_loss", (half(), half())),
        "soft_margin_loss_mean": ("soft_margin_loss", (half(), half())),
        "hinge_embedding_loss_mean": ("hinge_embedding_loss", (half(), half())),
        "margin_ranking_loss_float32_none": ("margin_ranking_loss", tuple(
            torch.empty(_SQUARE, dtype=torch.float32) for _ in range(3)) + (-0.75, 0)),
        "pixel_unshuffle": ("pixel_unshuffle", (
            torch.empty((4, 16, 64, 128, 128), dtype=torch.float16), 2)),
        "upsample_nearest1d_odd": ("upsample_nearest1d", (
            torch.empty((32, 64, 32768), dtype=torch.float16), [65537])),
        "upsample_nearest_exact1d_odd": ("_upsample_nearest_exact1d", (
            torch.empty((32, 64, 32768), dtype=torch.float16), [65537])),
        "upsample_nearest3d_odd": ("upsample_nearest3d", (
            torch.empty((4, 16, 64, 128, 128), dtype=torch.float16), [129, 257, 257])),
        "upsample_nearest3d_odd_M": ("upsample_nearest3d", (
            torch.empty((1, 16, 16, 32, 32), dtype=torch.float16), [17, 63, 61])),
        "replication_pad1d": ("replication_pad1d", (
            torch.empty((32, 64, 32768), dtype=torch.float16), [1, 2])),
        "replication_pad3d": ("replication_pad3d", (
            torch.empty((4, 16, 64, 128, 128), dtype=torch.float16), [1, 2, 2, 1, 0, 2])),
        "pixel_shuffle": ("pixel_shuffle", (
            torch.empty((4, 16, 64, 128, 128), dtype=torch.float16), 2)),
        "sigmoid": ("sigmoid", (half(),)),
        "reciprocal": ("reciprocal", (half(),)),
        "softplus": ("softplus", (half(),)),
        "softplus_beta_2": ("softplus", (half(), 2.0)),
        "logit": ("logit", (half(),)),
        "logit_eps": ("logit", (half(), 0.25)),
        "asinh": ("asinh", (half(),)),
        "logaddexp": ("logaddexp", (half(), half())),
        "relu6": ("relu6", (half(),)),
        **{f"{name}_float32": (name, (torch.empty(_SQUARE, dtype=torch.float32),))
           for name in ("sinh", "cosh", "asinh", "acosh", "erfinv", "digamma", "i0",
                        "special_i0e", "special_i1", "log1p")},
        **{f"{name}_float64": (name, (torch.empty(_SQUARE, dtype=torch.float64),))
           for name in ("log1p", "asinh", "acosh", "atanh", "i0")},
        "hardtanh": ("hardtanh", (half(),)),
        "masked_scatter": ("masked_scatter", (half(), torch.empty(_SQUARE, dtype=torch.bool),
                                              torch.empty(_SQUARE, dtype=torch.float16))),
        "asinh_bfloat16": ("asinh", (torch.empty(_SQUARE, dtype=torch.bfloat16),)),
        "take_M": ("take", (torch.empty((1024, 1024), dtype=torch.float16),
                            torch.empty((1024, 1024), dtype=torch.int64))),
        "take": ("take", (half(), torch.empty(_SQUARE, dtype=torch.int64))),
        **{f"{name}_bfloat16_mean": (name, tuple(
            torch.empty(_SQUARE, dtype=torch.bfloat16) for _ in range(2)))
           for name in ("hinge_embedding_loss", "soft_margin_loss", "huber_loss")},
    }


def census(ptx):
    """Instruction counts of a kernel's PTX (each instruction as written, not as executed)."""
    def count(pattern, text=ptx):
        return len(re.findall(pattern, text))
    barrier = re.search(r"\bbar(?:rier)?\.sync\b", ptx)
    return {
        # (a load's qualifiers include its cache policy, as in ld.global.L1::evict_first.v4)
        "loads": count(r"\bld\.global"), "vector_loads": count(r"\bld\.global[.:\w]*\.v4"),
        "loads_evict_first": count(r"\bld\.global\.L1::evict_first"),
        "loads_evict_last": count(r"\bld\.global\.L1::evict_last"),
        # issued ahead of the first barrier of the block (its latency overlaps what follows)
        "loads_before_barrier": count(r"\bld\.global", ptx[:barrier.start()] if barrier else ptx),
        "stores": count(r"\bst\.global"), "vector_stores": count(r"\bst\.global[.:\w]*\.v4"),
        "exp2": count(r"\bex2\."), "fma": count(r"\bfma\."),
        "divisions": count(r"\bdiv\.rn\.f"), "reciprocals": count(r"\brcp\.rn\.f"),
        "selects": count(r"\bselp\."),
        # a warp's vote on a condition of its lanes, and branches on a predicate
        "votes": count(r"\bvote\.sync\.(?:all|any)\.pred\b"),
        "barriers": count(r"\bbar(?:rier)?\.sync\b"),
        "branches": count(r"@!?%?\w+\s+bra\b"),
        "float64_conversions": count(r"\bcvt\.[.\w]*\.f64\b"),
        # float32 to bfloat16, one element each (F2F, quarter rate) or a pair (F2FP)
        "bfloat16_conversions": count(r"\bcvt\.rn\.bf16\.f32\b"),
        "bfloat16_pair_conversions": count(r"\bcvt\.rn\.bf16x2\.f32\b"),
        "approximations_flushing": count(r"\b(?:ex2|lg2|rsqrt|div|rcp|sqrt)\.approx\.ftz\.f32"),
        "approximations_keeping": count(r"\b(?:ex2|lg2|rsqrt|div|rcp|sqrt)\.approx\.f32"),
        "flushing": count(r"\.ftz\."),
        "float64_products_rounded": count(r"\bmul\.rn\.f64"),
        "float64_approximations": count(r"\b(?:rsqrt|rcp)\.approx\.ftz\.f64"),
        "float64_constants": sorted(set(re.findall(r"\b0d[0-9A-F]{16}\b", ptx))),
    }


def machine_code(cubin):
    """What ptxas made of a kernel (sm_90 SASS, disassembled with the ``nvdisasm`` and
    ``cuobjdump`` Triton ships): its registers a thread, its accesses to local memory (spilled
    registers), its instructions, and the global loads it issues before the first warp shuffle
    (a reduction's first step: a load after it waits for the sum)."""
    # here: main sets TRITON_INTERPRET before Triton is first imported
    from benchmarks.instructions import cubin_tool, sass_instructions

    sass = cubin_tool("nvdisasm", cubin, "-c")
    usage = cubin_tool("cuobjdump", cubin, "--dump-resource-usage")
    shuffle = re.search(r"\bSHFL\.", sass)
    return {"registers": int(re.search(r"\bREG:(\d+)", usage).group(1)),
            "local_accesses": len(re.findall(r"\b(?:LDL|STL)\b", sass)),
            # every instruction of the kernel as written (its padding NOPs included)
            "sass_instructions": len(sass_instructions(sass)),
            "sass_loads": len(re.findall(r"\bLDG\.", sass)),
            "sass_loads_before_shuffle": len(re.findall(
                r"\bLDG\.", sass[:shuffle.start()] if shuffle else sass))}


def compiled_launches(*names, machine_code=False):
    """This script's lines for the cases ``names``, run in a process of its own (the library
    compiles there, and interprets here), as dicts; with ``machine_code``, ptxas's facts too."""
    tests = pathlib.Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(tests.parent), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, __file__, *(["--machine-code"] if machine_code else []),
                           *names], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main(names, with_machine_code=False):
    os.environ["TRITON_INTERPRET"] = "0"  # before the library defines its kernels
    import torch
    import triton
    from compile_check import _StandInDriver

    triton.runtime.driver.set_active(_StandInDriver())
    from flaggems_exp import REGISTRY
    from flaggems_exp.runtime import launch

    launches = []

    def compile_only(kernel, grid, kernel_args, options):
        compiled = kernel.warmup(*kernel_args, grid=grid, **options)
        launches.append((kernel.fn.__name__, tuple(grid), compiled, options))
        return compiled

    launch.run_kernel = compile_only
    # a kernel loaded ahead of its launch: compiled there, counted at the launch
    launch.load_kernel = lambda kernel, grid, kernel_args, options: kernel.warmup(
        *kernel_args, grid=grid, **options)
    cases = _cases(torch)
    for name in names:
        op_name, args = cases[name]
        launches.clear()
        REGISTRY[op_name].call(args, {}, None)
        for kernel, grid, compiled, options in launches:
            constants = {k: v for k, v in options.items()
                         if k.isupper() and isinstance(v, (bool, int))}
            print(json.dumps({"case": name, "kernel": kernel, "grid": grid,
                              "num_warps": compiled.metadata.num_warps, "constexprs": constants,
                              "functions": {k: v.fn.__name__ for k, v in options.items()
                                            if k.isupper() and hasattr(v, "fn")},
                              "flushes_subnormals": options.get("enable_reflect_ftz"),
                              "maxnreg": options.get("maxnreg"),
                              **census(compiled.asm["ptx"]),
                              **(machine_code(compiled.asm["cubin"]) if with_machine_code
                                 else {})}))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asked = "--machine-code" in arguments
    main([a for a in arguments if a != "--machine-code"], asked)
