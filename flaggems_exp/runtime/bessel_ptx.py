"""Cephes' Bessel series for float32 as PTX, branching per warp on its lanes' sides.

ATen's calc_i0 / calc_i0e / calc_i1 take one of two Chebyshev series per element: chbevl(a/2 - 2,
A) for a = |x| <= 8, chbevl(32/a - 2, B) beyond (NaN included). Compiled by nvcc, a warp whose
lanes agree runs one series. Triton has no branch per element; choosing a series per block (a
reduction of the block's sides, then a branch) cost 30-40 µs at 8192x8192 float32 against
eager's kernel, whatever the program's warps. This PTX, one instance per element
(``tl.inline_asm_elementwise``), decides per warp with two votes on the lane's side:

- every lane small: series A and the small finish alone;
- every lane big: series B and the big finish alone;
- both: one recurrence choosing each step's coefficient per lane (B padded in front with zeros,
  which leave it at zero until its first coefficient) and both finishes, selected per lane:
  about 1.5x one series, where nvcc's divergent warp runs both, one after the other.

Every operation is the one nvcc makes of ATen's source (no fast math): ``x * b1 - b2 +
c`` contracted to ``fma(x, b1, -b2) + c``; the first step, whose b2 is zero, to
``fma(x, C0, C1)``; x / 2 - 2 to ``fma(x, 0.5, -2)`` (x / 2 is exact, so this is one rounding
either way); 32 / x and the division by sqrt(x) correctly rounded; every other operation rounded
on its own (``.rn``, never contracted by ptxas). So the bits are PyTorch's CUDA kernel's.
Labels are local to the instance's braces, so a thread's several instances do not clash.
"""
import struct

_FINISHES = ("i0", "i0e", "i1")
"""i0: exp(a) * series, divided by sqrt(a) beyond 8 ($2 = exp(a)); i0e: the series, divided
by sqrt(a) beyond; i1: exp(a) * a * series, exp(a) * series / sqrt(a) beyond (the sign of x
is applied outside)."""


def f32_immediate(value):
    """A float32 immediate: the value rounded to nearest, as a float array's initialiser is."""
    return "0f%08X" % struct.unpack("<I", struct.pack("<f", value))[0]


def _series_alone(coefficients):
    """chbevl of ``coefficients`` at register ``y`` into ``s``; registers b1..b3 rotate."""
    c = list(coefficients)
    lines = [f"fma.rn.f32 b1, y, {f32_immediate(c[0])}, {f32_immediate(c[1])};"]  # b2 = 0 folded
    b2, b1, b0 = None, f32_immediate(c[0]), "b1"  # after the first step b1 is C0, an immediate
    free = ["b2", "b3"]
    for coefficient in c[2:]:
        b2, b1 = b1, b0
        if b2.startswith("0f"):
            lines.append(f"fma.rn.f32 t, y, {b1}, {f32_immediate(-c[0])};")
        else:
            lines += [f"neg.f32 t, {b2};", f"fma.rn.f32 t, y, {b1}, t;"]
        b0 = free.pop(0)
        lines.append(f"add.rn.f32 {b0}, t, {f32_immediate(coefficient)};")
        if not b2.startswith("0f"):
            free.append(b2)
    return lines + [f"sub.rn.f32 t, {b0}, {b2};", "mul.rn.f32 s, t, 0f3F000000;"]


def _series_either(A, B):
    """chbevl of A on lanes where ``p`` holds, of B elsewhere, in one recurrence (B padded in
    front to A's length)."""
    start = len(A) - len(B)
    B = [0.0] * start + list(B)
    lines = [f"selp.f32 b1, {f32_immediate(A[0])}, {f32_immediate(B[0])}, p;",
             "mov.f32 b2, 0f00000000;", "mov.f32 b3, 0f00000000;"]
    b0, b1, b2 = "b1", "b2", "b3"
    for i in range(1, len(A)):
        b2, b1, b0 = b1, b0, b2  # b0 takes the register of the b2 no longer needed
        if i == 1:  # b2 = 0 folded, as in A alone (B's lanes are still zero)
            lines += [f"selp.f32 s, {f32_immediate(A[i])}, {f32_immediate(B[i])}, p;",
                      f"fma.rn.f32 {b0}, y, {b1}, s;"]
        elif i == start + 1:  # B's first step: its b2 = 0 folded
            lines += [f"neg.f32 t, {b2};", f"fma.rn.f32 t, y, {b1}, t;",
                      f"add.rn.f32 t, t, {f32_immediate(A[i])};",
                      f"fma.rn.f32 s, y, {b1}, {f32_immediate(B[i])};",
                      f"selp.f32 {b0}, t, s, p;"]
        else:
            lines += [f"neg.f32 t, {b2};", f"fma.rn.f32 t, y, {b1}, t;",
                      f"selp.f32 s, {f32_immediate(A[i])}, {f32_immediate(B[i])}, p;",
                      f"add.rn.f32 {b0}, t, s;"]
    return lines + [f"sub.rn.f32 t, {b0}, {b2};", "mul.rn.f32 s, t, 0f3F000000;"]


def _finish(finish, small):
    """The op's steps after the series ``s`` on one side of 8, the result left in register
    ``r``."""
    if finish == "i0e":
        return ["mov.f32 r, s;"] if small else ["sqrt.rn.f32 q, $1;", "div.rn.f32 r, s, q;"]
    if small:
        return (["mul.rn.f32 r, $2, s;"] if finish == "i0"
                else ["mul.rn.f32 t, $2, $1;", "mul.rn.f32 r, t, s;"])
    return ["mul.rn.f32 t, $2, s;", "sqrt.rn.f32 q, $1;", "div.rn.f32 r, t, q;"]


def program(A, B, finish):
    """The PTX of one element: $0 the result, $1 = a = |x| (float32), $2 = exp(a) unless
    ``finish`` is i0e. A and B: the series' coefficients (float32 values of Cephes' doubles)."""
    assert finish in _FINISHES and len(A) > len(B) >= 3
    y_small = "fma.rn.f32 y, $1, 0f3F000000, 0fC0000000;"
    y_big = ["div.rn.f32 t, 0f42000000, $1;", "sub.rn.f32 y, t, 0f40000000;"]
    small = [y_small] + _series_alone(A) + _finish(finish, True)
    big = y_big + _series_alone(B) + _finish(finish, False)
    # a mixed warp: y and the finish of each lane's side, the small finish's r kept in u
    mixed = (y_big + ["mov.f32 q, y;", y_small, "selp.f32 y, y, q, p;"] + _series_either(A, B)
             + _finish(finish, True) + ["mov.f32 u, r;"] + _finish(finish, False)
             + ["selp.f32 r, u, r, p;"])
    lines = ["{", ".reg .pred p, every, some;", ".reg .f32 y, t, s, q, r, u, b1, b2, b3;",
             "setp.le.f32 p, $1, 0f41000000;",  # NaN: false, B's side, as in ATen
             "vote.sync.all.pred every, p, 0xffffffff;", "vote.sync.any.pred some, p, 0xffffffff;",
             "@every bra SMALL;", "@!some bra BIG;"]
    lines += mixed + ["bra DONE;", "SMALL:"] + small + ["bra DONE;", "BIG:"] + big
    return "\n".join(lines + ["DONE:", "mov.f32 $0, r;", "}"])
