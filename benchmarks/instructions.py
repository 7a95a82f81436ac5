"""Instructions per element of the arithmetic-bound pointwise ops: ours against PyTorch's own
CUDA kernels, both read as sm_90 (H200) SASS, on any machine.

    python -m benchmarks.instructions                        # ours only
    python -m benchmarks.instructions --torch-lib PATH/libtorch_cuda.so --out DIR
    python -m benchmarks.instructions --op sinh --dtype float16

An op whose kernel is bound by its arithmetic (an exponential, a logarithm, a series per
element) runs at the rate its instructions issue, not at the copy ceiling; its report states
how many it issues per element against PyTorch's kernel. Ours: the op's launch for an (8192,
8192) call (the runner's L case), compiled for sm_90 without a GPU (a stand-in driver, each
launch replaced by ``JITFunction.warmup``) and disassembled with the ``nvdisasm`` Triton ships.
PyTorch's: its ``vectorized_elementwise_kernel<8>`` for the op and dtype (the kernel it runs on
contiguous, 16-byte aligned tensors), found by the op's kernel function in the sm_90 cubins of
``libtorch_cuda.so`` (extracted with Triton's ``cuobjdump``; the CUDA wheel of the torch the GPU
runs). Both are counted on their main path: from the entry to the first unconditional
``EXIT``, the path of a thread with a full vector of elements; elements per thread are the
path's loaded bits over the inputs' bits per element. Static counts: a branch taken around a
rare slow path (a division's, a logarithm's) counts its instructions once.

Ops PyTorch compiles at run time (the jiterator: ``i0``, ``special_i0e``, ``special_i1``,
``digamma``, ...) have no kernel in the library and get ours only. Writes
``instructions.csv`` and ``instructions.md`` to ``--out``.
"""
import argparse
import csv
import os
import pathlib
import re
import subprocess
import sys
import tempfile

if __name__ == "__main__":  # compiled code is the point: said before Triton loads
    os.environ["TRITON_INTERPRET"] = "0"

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

_TOOLS = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
SHAPE = (8192, 8192)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
CSV_NAME, SUMMARY_NAME = "instructions.csv", "instructions.md"
COLUMNS = ("op", "dtype", "ours", "ours_per_element", "ours_mufu", "ours_branches", "pytorch",
           "pytorch_per_element", "pytorch_mufu", "pytorch_branches", "pytorch_kernel",
           "triton", "torch_lib", "error")

# op -> (inputs, PyTorch's kernel function, which of its lambdas per dtype, in mangled order:
# logit's first is the one without eps; None: compiled at run time, not in the library)
OPS = {
    "exp": (1, "exp_kernel_cuda", 0), "log": (1, "log_kernel_cuda", 0),
    "log2": (1, "log2_kernel_cuda", 0), "log1p": (1, "log1p_kernel_cuda", 0),
    "sin": (1, "sin_kernel_cuda", 0), "cos": (1, "cos_kernel_cuda", 0),
    "sinh": (1, "sinh_kernel_cuda", 0), "cosh": (1, "cosh_kernel_cuda", 0),
    "asinh": (1, "asinh_kernel_cuda", 0), "acosh": (1, "acosh_kernel_cuda", 0),
    "atanh": (1, "atanh_kernel_cuda", 0), "sigmoid": (1, "sigmoid_kernel_cuda", 0),
    "silu": (1, "silu_kernel", 0), "selu": (1, "elu_kernel", 0),
    "softplus": (1, "softplus_kernel", 0), "logit": (1, "logit_kernel_cuda", 0),
    "logaddexp": (2, "logaddexp_kernel_cuda", 0), "logaddexp2": (2, "logaddexp2_kernel_cuda", 0),
    "i0": (1, None, 0), "special_i0e": (1, None, 0), "special_i1": (1, None, 0),
    "digamma": (1, None, 0), "sinc": (1, None, 0), "erfinv": (1, None, 0),
}
# how a dtype is spelled in a mangled lambda's parameter list (a repeat may be a substitution)
_MANGLED = {torch.float16: r"(?:N3c104HalfE|NS\d*_4HalfE)",
            torch.bfloat16: r"(?:N3c108BFloat16E|NS\d*_8BFloat16E)", torch.float32: r"f"}
_INSTRUCTION = re.compile(r"^\s+/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", re.M)
# a global load's mnemonic, qualifiers and all (LDG.E.128, LDG.E.EF.128, LDG.E.U16, LDG.E)
_LOAD = re.compile(r"\bLDG\.E[.A-Z0-9]*")


def load_bits(text):
    """The bits an instruction loads from global memory: its width qualifier (``.128``,
    ``.U16``), 32 where it has none, 0 for no global load."""
    bits = 0
    for mnemonic in _LOAD.findall(text):
        width = re.search(r"\.[US]?(\d+)(?=\.|$)", mnemonic)
        bits += int(width.group(1)) if width else 32
    return bits


class StandInDriver:
    """What ``JITFunction.warmup`` asks of the active driver, for an sm_90 device: compiling
    for the H200 on a machine without a GPU."""

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_active_torch_device(self):
        return torch.device("cpu")


def torch_version(library):
    """The version of the torch build ``library`` belongs to (its package's ``version.py``),
    else the library's path."""
    version = pathlib.Path(library).resolve().parent.parent / "version.py"
    found = re.search(r"__version__ = '([^']+)'", version.read_text()) if version.exists() else None
    return f"torch {found.group(1)}" if found else str(library)


def _tool(name, *args):
    return subprocess.run([str(_TOOLS / name), *map(str, args)], capture_output=True,
                          text=True, check=True).stdout


def main_path(sass):
    """The instructions of a kernel's SASS up to its first unconditional EXIT (their text)."""
    instructions = _INSTRUCTION.findall(sass)
    end = next((i for i, text in enumerate(instructions) if text == "EXIT"),
               len(instructions) - 1)
    return instructions[:end + 1]


def census(sass, inputs, dtype):
    """(instructions, per element, MUFU, branches) of a kernel's main path; elements per
    thread are its loaded bits over the inputs' bits per element."""
    path = main_path(sass)
    loaded = sum(load_bits(text) for text in path)
    elements = loaded // (inputs * dtype.itemsize * 8)
    return (len(path), round(len(path) / elements, 1) if elements else None,
            sum("MUFU" in text for text in path),
            sum(bool(re.search(r"\bBRA\b", text)) for text in path))


# ---- ours ---------------------------------------------------------------------------------
def our_sass(op_name, inputs, dtype):
    """The SASS of our single launch for an ``SHAPE`` call of ``op_name`` in ``dtype`` (the
    library imported compiled: see ``main``)."""
    from flaggems_exp import REGISTRY
    from flaggems_exp.runtime import launch
    from flaggems_exp.runtime.device import INTERPRETED

    if INTERPRETED:
        raise RuntimeError("the library was imported for Triton's interpreter: run "
                           "python -m benchmarks.instructions, which imports it compiled")

    compiled = []

    def compile_only(kernel, grid, kernel_args, options):
        compiled.append(kernel.warmup(*kernel_args, grid=grid, **options))
        return compiled[-1]

    launch.run_kernel = compile_only
    args = tuple(torch.empty(SHAPE, dtype=dtype) for _ in range(inputs))
    REGISTRY[op_name].call(args, {}, None)
    (kernel,) = compiled
    with tempfile.TemporaryDirectory() as scratch:
        cubin = pathlib.Path(scratch) / "kernel.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        return _tool("nvdisasm", "-c", cubin)


# ---- PyTorch's ----------------------------------------------------------------------------
class TorchKernels:
    """The sm_90 cubins of a ``libtorch_cuda.so``, extracted once into ``folder``, and the
    SASS of the vectorized kernels of an op's kernel function."""

    def __init__(self, library, folder):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not any(self.folder.glob("*sm_90*.cubin")):
            subprocess.run([str(_TOOLS / "cuobjdump"), "-xelf", "sm_90",
                            str(pathlib.Path(library).resolve())],
                           cwd=self.folder, capture_output=True, check=True)
        self._sections = {}

    def _units(self, key):
        for cubin in sorted(self.folder.glob("*sm_90*.cubin")):
            if key.encode() in cubin.read_bytes():
                yield cubin

    def _sass(self, cubin):
        if cubin not in self._sections:
            parts = re.split(r"^\s*\.text\.(\S+):\s*$", _tool("nvdisasm", "-c", cubin),
                             flags=re.M)
            self._sections[cubin] = dict(zip(parts[1::2], parts[2::2]))
        return self._sections[cubin]

    def sass(self, function, inputs, dtype, which):
        """(mangled name, SASS) of ``vectorized_elementwise_kernel<8>`` of ``function``'s
        ``which``-th lambda taking ``inputs`` values of ``dtype``, or None."""
        key = f"{len(function)}{function}"
        sections = (item for cubin in self._units(key) for item in self._sass(cubin).items())
        return vectorized_kernel(sections, function, inputs, dtype, which)


def vectorized_kernel(sections, function, inputs, dtype, which):
    """The (mangled name, SASS) among ``sections`` of ``vectorized_elementwise_kernel<8>`` of
    ``function``'s ``which``-th lambda (in the order of their mangled numbers) taking
    ``inputs`` values of ``dtype``, or None."""
    key = f"{len(function)}{function}"
    spelled = _MANGLED[dtype]
    lambda_ = re.compile(rf"EUl{spelled}(?:{spelled}|S\d*_){{{inputs - 1}}}E(\d*)_St5array")
    found = []
    for name, body in sections:
        if key in name and "vectorized_elementwise_kernelILi8E" in name:
            match = lambda_.search(name)
            if match:
                found.append((int(match.group(1) or -1), name, body))
    found.sort()
    return found[which][1:] if len(found) > which else None


# ---- the table ----------------------------------------------------------------------------
def rows(ops, dtypes, torch_kernels, library):
    for op_name in ops:
        inputs, function, which = OPS[op_name]
        for dtype in dtypes:
            row = dict.fromkeys(COLUMNS, "")
            row.update(op=op_name, dtype=str(dtype).removeprefix("torch."),
                       triton=triton.__version__,
                       torch_lib=torch_version(library) if library else "")
            try:
                (row["ours"], row["ours_per_element"], row["ours_mufu"],
                 row["ours_branches"]) = census(our_sass(op_name, inputs, dtype), inputs, dtype)
            except Exception as exc:  # noqa: BLE001 - one op's failure is its row's, not the table's
                row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                yield row
                continue
            found = None
            if torch_kernels is not None and function is not None:
                found = torch_kernels.sass(function, inputs, dtype, which)
            if found is not None:
                row["pytorch_kernel"] = found[0]
                (row["pytorch"], row["pytorch_per_element"], row["pytorch_mufu"],
                 row["pytorch_branches"]) = census(found[1], inputs, dtype)
            elif function is None:
                row["pytorch_kernel"] = "compiled at run time (jiterator)"
            yield row


def summary(table):
    """Markdown: per op and dtype, instructions per element, ours and PyTorch's."""
    lines = ["# Instructions per element (sm_90 SASS, main path)", "",
             f"Ours: Triton {table[0]['triton']}, the launch for an {SHAPE[0]}x{SHAPE[1]} call. "
             f"PyTorch's: `{table[0]['torch_lib'] or 'not read (no --torch-lib)'}`, "
             "`vectorized_elementwise_kernel<8>`. Made by `python -m benchmarks.instructions`.",
             "", "Static counts of each kernel's main path, per element: a branch around a rare "
             "slow path (sin's and cos's reduction of huge arguments, a correctly rounded "
             "division's, a logarithm's) counts that path once. MUFU: the special-function "
             "unit's instructions (exponentials, reciprocals, roots) per thread. jiterator: "
             "PyTorch compiles that kernel at run time; it is not in the library.",
             "", "| op | dtype | ours | PyTorch's | ours / PyTorch's | MUFU ours / PyTorch's |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in table:
        if row["error"]:
            lines.append(f"| `{row['op']}` | {row['dtype']} | error: {row['error']} | | | |")
            continue
        theirs = row["pytorch_per_element"]
        ratio = (f"{float(row['ours_per_element']) / float(theirs):.2f}" if theirs else "–")
        shown = theirs or ("jiterator" if "jiterator" in row["pytorch_kernel"] else "–")
        their_mufu = "–" if row["pytorch"] == "" else row["pytorch_mufu"]
        lines.append(f"| `{row['op']}` | {row['dtype']} | {row['ours_per_element']} | {shown} "
                     f"| {ratio} | {row['ours_mufu']} / {their_mufu} |")
    return "\n".join(lines + [""])


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--op", action="append", default=[], choices=sorted(OPS),
                        metavar="NAME", help="an op (repeatable); default: all of " +
                        ", ".join(OPS))
    parser.add_argument("--dtype", action="append", default=[],
                        choices=[str(d).removeprefix("torch.") for d in DTYPES], metavar="D")
    parser.add_argument("--torch-lib", type=pathlib.Path, default=None, metavar="PATH",
                        help="PyTorch's libtorch_cuda.so, for its kernels' column")
    parser.add_argument("--cubins", type=pathlib.Path, default=None, metavar="DIR",
                        help="where its sm_90 cubins are extracted, or were (default: a "
                             "temporary directory; they take about 0.7 GB)")
    parser.add_argument("--out", type=pathlib.Path, default=None, metavar="DIR",
                        help="where instructions.csv and .md go (default: a fresh temporary "
                             "directory)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    triton.runtime.driver.set_active(StandInDriver())
    ops = args.op or list(OPS)
    dtypes = [getattr(torch, d) for d in args.dtype] or list(DTYPES)
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="instructions_"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        kernels = None
        if args.torch_lib is not None:
            kernels = TorchKernels(args.torch_lib, args.cubins or scratch)
        table = list(rows(ops, dtypes, kernels, args.torch_lib))
    with open(out / CSV_NAME, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    text = summary(table)
    (out / SUMMARY_NAME).write_text(text)
    print(text)
    print(f"wrote {out / CSV_NAME} and {out / SUMMARY_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
