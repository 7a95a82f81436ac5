"""Why a row at L stays below torch.compile's speed or far from the copy ceiling, where it was
proved by reading the compiled code or measuring a variant (``benchmarks/NOTES.md``, the
section named in each entry). The report attaches an entry to every matching row it lists;
a listed row without one is work still to do.

An entry claims a cause, not a time: the report prints it next to the row's own numbers, so a
later run whose numbers no longer fit the cause shows it. ``arithmetic`` marks rows bound by
their instructions rather than their bytes (the copy ceiling is not theirs to reach).
"""
import attrs


@attrs.frozen
class Why:
    ops: tuple
    dtypes: tuple       # () for every dtype
    text: str
    arithmetic: bool    # bound by its instructions, not by the bytes it moves


_HALF = ("float16", "bfloat16")

ENTRIES = (
    Why(("sigmoid", "silu"), _HALF,
        "torch.compile computes another function: its exponential is `ex2.approx` of "
        "x·log2(e) and its reciprocal the approximate one (Inductor's sigmoid, 128 SASS a "
        "float16 program of 8 elements a thread, against our 264-280: libdevice's `expf` and a "
        "correctly rounded reciprocal, PyTorch's `1 / (1 + exp(-x))`; Inductor's silu is "
        "x·sigmoid(x), torch._decomp's); NOTES \"Why torch.compile's float16 sigmoid and "
        "softplus are faster\", \"The H200's L matrix at a18485d\"",
        arithmetic=True),
    Why(("selu",), ("bfloat16",),
        "torch.compile takes libdevice's flush-to-zero branches (Triton's default); a bfloat16 "
        "input can be a float32 subnormal, which PyTorch keeps (selu(-1e-40) is -1.76e-40, "
        "flushed 0), so ours cannot (288 against 264 SASS a program); NOTES \"float16 sinh, "
        "cosh, asinh, acosh, sigmoid, selu with libdevice's flush-to-zero branches\"",
        arithmetic=True),
    Why(("i0", "special_i1"), (),
        "torch.compile computes another function: libdevice's `cyl_bessel_i0f`/`i1f`, not "
        "Cephes' Chebyshev series of PyTorch's kernel, and its values differ from PyTorch's "
        "(not an option here); against eager, ours runs at its time or faster since float32 "
        "takes the series per warp in PTX, as nvcc's code branches per lane (i0 float32 203.2 "
        "against 208.6 µs, special_i1 212.2 against 209.4), and 16-bit looks its results up; "
        "NOTES \"Bessel functions: one series per block\", \"float32 Bessel functions branch "
        "per warp, in PTX\"",
        arithmetic=True),
    Why(("special_i0e",), (),
        "its static count (instructions.csv) holds every path of the per-warp PTX: both "
        "Chebyshev series and the one recurrence of both, each counted once, where a warp "
        "takes one of them, as PyTorch's kernel branches per element into one series; the "
        "work an element takes is not more: float32 runs at eager's and torch.compile's time "
        "(181.9 against 181.2 and 181.3 µs at L on the H200), and 16-bit looks its results "
        "up (72% of the ceiling against eager's and compile's 35%); NOTES \"float32 Bessel "
        "functions branch per warp, in PTX\"",
        arithmetic=True),
    Why(("masked_scatter",), (),
        "count, scan and scatter of a 50% mask, bound by latency: a tile's main pass waits on "
        "its memory round trips one after the other (the mask, its scans, the source's "
        "gathers), 4 programs of 8 warps an SM; its instructions (42 SASS an element, float16) "
        "issue in about 80 µs and its bytes take about 127 at the ceiling; 5.6x torch.compile's "
        "speed and 3.3x eager's (222 / 1242 / 740 µs float16); NOTES \"masked_scatter's main "
        "pass: registers against instructions\", \"masked_scatter's main pass: x and the "
        "first rank loaded with the mask\", \"The compiled run of 2026-12-06 (noon)\"",
        arithmetic=False),
    Why(("scalar_tensor",), (),
        "one element: the time is a launch's latency, which varies by more than this gap "
        "with nothing the kernel does; one-element Triton kernels on an H100 took 3.8 to "
        "4.3 µs in one process whatever their warps (1 or 4) and arguments (2 or 21), and "
        "there ours took 3.81 against eager's 4.35; NOTES \"A one-element launch\"",
        arithmetic=False),
    Why(("diag",), ("float16",),
        "bandwidth-bound (96% of the ceiling) and the run's spread: bfloat16, the same "
        "instructions on the same bytes, ran at compile's time in the same run (45.3 against "
        "45.3 µs), and float16 at 0.98x compile the run before (45.5 against 44.5); NOTES "
        "\"The compiled run of 2026-12-06\"",
        arithmetic=False),
    Why(("trace",), (),
        "at its floor: one program summing the 8192 diagonal elements (stride 8193) took "
        "8.6-9.4 µs on 4 to 32 warps in one run, ours 8.8-9.0 there; a launch and one round "
        "of strided loads, whose spread is larger than this gap; NOTES \"The compiled run of "
        "2026-12-06\"",
        arithmetic=False),
    Why(("_safe_softmax",), _HALF,
        "bound by its instructions, not its bytes: 33 SASS an element on the main path of "
        "the kernel timed here (sm_90, the L launch: a row of 8192 a program, 16 elements a "
        "thread), about 67 µs of issue at 4 a clock on 132 SMs where its bytes take 63 at "
        "the ceiling; float32 moves twice the bytes on the same instructions and runs at "
        "94%; 10 of the 33 are the correctly rounded division by the row's sum (PyTorch's "
        "epilogue `exp(x - max) / sum`), one reciprocal a row since e0a95b5 (30.2 an "
        "element; float16 results 27.1 since b4ef57d, without the range test); PyTorch's "
        "kernel runs at 11% of the ceiling and torch.compile's at 36%; "
        "NOTES \"16-bit `_safe_softmax`: bound by its divisions' instructions\", "
        "\"`_safe_softmax`'s quotients: one reciprocal a row\", \"float16 results: the "
        "quotients without a range test\"",
        arithmetic=True),
)


def find(op, dtype):
    """The entry explaining ``op``'s row in ``dtype`` (an in-place form's is its op's, the same
    kernel's), or None."""
    for name in dict.fromkeys((op, op.rstrip("_"))):
        for entry in ENTRIES:
            if name in entry.ops and (not entry.dtypes or dtype in entry.dtypes):
                return entry
    return None
