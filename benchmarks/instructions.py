"""Instructions per element of the arithmetic-bound pointwise ops: ours against PyTorch's own
CUDA kernels, both read as sm_90 (H200) SASS, on any machine.

    python -m benchmarks.instructions                        # ours only
    python -m benchmarks.instructions --torch-lib PATH/libtorch_cuda.so --out DIR
    python -m benchmarks.instructions --torch-lib PATH/libtorch_cuda.so --nvcc PATH/nvcc --out DIR
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
``digamma``, ``sinc``, ``erfinv``) have no kernel in the library. With ``--nvcc``, PyTorch's
column gets the kernel the jiterator would build for that call: its source written as torch's
``jit_utils.cpp`` writes it (``generate_code``, vectorized: the op's string computed in float,
8 elements a thread in vectors of 16 bytes), from the templates and op strings the library
holds as string literals, compiled for sm_90 by CUDA's nvcc with NVRTC's default flags (the
device's torch compiles it with NVRTC 13.0 at run time). Without it they get ours only.
Writes ``instructions.csv`` and ``instructions.md`` to ``--out``.
"""
import argparse
import csv
import os
import pathlib
import re
import struct
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
# logit's first is the one without eps; None: compiled at run time (JITERATED), not in the library)
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
# op compiled at run time -> the function of its jiterator string that the kernel calls: the name
# its .cu file gives ``jitted_gpu_kernel`` (UnarySpecialOpsKernel.cu's ``i0e_name`` is
# "calc_i0e", ``erfinv_name`` "erfinv_kernel"; UnaryGammaKernels.cu's ``digamma_name``)
JITERATED = {"i0": "i0", "special_i0e": "calc_i0e", "special_i1": "i1", "digamma": "digamma",
             "sinc": "sinc", "erfinv": "erfinv_kernel"}
# how a dtype is spelled in a mangled lambda's parameter list (a repeat may be a substitution)
_MANGLED = {torch.float16: r"(?:N3c104HalfE|NS\d*_4HalfE)",
            torch.bfloat16: r"(?:N3c108BFloat16E|NS\d*_8BFloat16E)", torch.float32: r"f"}
_INSTRUCTION = re.compile(r"^\s+/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", re.M)
# a global load's mnemonic, qualifiers and all (LDG.E.128, LDG.E.EF.128, LDG.E.U16, LDG.E)
_LOAD = re.compile(r"\bLDG\.E[.A-Z0-9]*")


def load_bits(text):
    """The bits an instruction loads of the op's inputs from global memory: its width qualifier
    (``.128``, ``.U16``), 32 where it has none, 0 for no global load. A load through the
    read-only constant path (``LDG.E.CONSTANT``) reads a table, not an input: the 2/pi bits a
    sine's reduction of huge arguments reads, once for each element, in CUDA's and libdevice's
    sinf alike; counted, it would make a thread's elements two or three times what they are."""
    bits = 0
    for mnemonic in _LOAD.findall(text):
        if ".CONSTANT" in mnemonic:
            continue
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


def cubin_tool(name, cubin, *flags):
    """``name`` (a tool Triton ships: nvdisasm, cuobjdump) with ``flags`` on a kernel's cubin
    (bytes), written to a file for it: its output."""
    with tempfile.TemporaryDirectory() as scratch:
        path = pathlib.Path(scratch) / "kernel.cubin"
        path.write_bytes(cubin)
        return _tool(name, *flags, path)


def sass_instructions(sass):
    """The text of every instruction of a kernel's SASS, in order (its padding NOPs too)."""
    return _INSTRUCTION.findall(sass)


def main_path(sass):
    """The instructions of a kernel's SASS up to its first unconditional EXIT (their text)."""
    instructions = sass_instructions(sass)
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
    op = REGISTRY[op_name]
    op.looks_up_16_bit = frozenset()  # the kernel that computes (a 16-bit call would gather)
    try:
        op.call(args, {}, None)
    finally:
        del op.looks_up_16_bit  # the class's declaration again
    (kernel,) = compiled
    return cubin_tool("nvdisasm", kernel.asm["cubin"], "-c")


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
            self._sections[cubin] = text_sections(_tool("nvdisasm", "-c", cubin))
        return self._sections[cubin]

    def sass(self, function, inputs, dtype, which):
        """(mangled name, SASS) of ``vectorized_elementwise_kernel<8>`` of ``function``'s
        ``which``-th lambda taking ``inputs`` values of ``dtype``, or None."""
        key = f"{len(function)}{function}"
        sections = (item for cubin in self._units(key) for item in self._sass(cubin).items())
        return vectorized_kernel(sections, function, inputs, dtype, which)


def text_sections(sass):
    """A cubin's disassembly split by function: {function's name: its SASS}."""
    parts = re.split(r"^\s*\.text\.(\S+):\s*$", sass, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


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


# ---- PyTorch's, compiled at run time (the jiterator) --------------------------------------
def elf_section(path, name):
    """The bytes of section ``name`` of the 64-bit little-endian ELF file at ``path``, read
    without the rest of the file."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:6] != b"\x7fELF\x02\x01":
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        # e_shoff; e_shentsize, e_shnum, e_shstrndx
        (table,) = struct.unpack_from("<Q", header, 0x28)
        size, count, names_index = struct.unpack_from("<HHH", header, 0x3A)
        f.seek(table)
        raw = f.read(size * count)
        # each header: name's offset in the names section, type, flags, address, offset, size
        headers = [struct.unpack_from("<IIQQQQ", raw, i * size) for i in range(count)]
        f.seek(headers[names_index][4])
        names = f.read(headers[names_index][5])
        for name_at, _, _, _, offset, length in headers:
            if names[name_at:names.index(b"\0", name_at)].decode() == name:
                f.seek(offset)
                return f.read(length)
    raise KeyError(f"{path} has no section {name}")


def library_strings(path):
    """The string literals of a shared library: its ``.rodata`` split at NULs (a raw string
    literal, however many lines, is one)."""
    return [text.decode("utf-8", "replace") for text in elf_section(path, ".rodata").split(b"\0")
            if len(text) > 3]


def format_code_template(template, env):
    """``template`` with each ``$key`` and ``${key}`` replaced by ``env[key]``, as torch's
    ``at::jit::CodeTemplate`` does: a key that starts its line (after blanks) indents the
    value's later lines to its column. A key ``env`` lacks raises KeyError."""
    out, column, line_blank, at = [], 0, True, 0
    key = re.compile(r"\$(?:\{,?(\w*),?\}|(\w*))")
    while at < len(template):
        if template[at] == "$":
            found = key.match(template, at)
            value = env[found.group(1) if found.group(1) is not None else found.group(2)]
            out.append(value.replace("\n", "\n" + " " * column) if line_blank else value)
            line_blank, at = False, found.end()
            continue
        char = template[at]
        out.append(char)
        column += 1
        line_blank = line_blank and char.isspace()
        if char == "\n":
            column, line_blank = 0, True
        at += 1
    return "".join(out)


# how the jiterator names a dtype in its source (jit_utils.h's typeName)
_JIT_TYPE = {torch.float16: "at::Half", torch.bfloat16: "at::BFloat16", torch.float32: "float"}


class JiteratorSource:
    """How PyTorch's jiterator writes the kernel of a contiguous call without casts: the
    vectorized case of ``generate_code`` (aten/src/ATen/native/cuda/jit_utils.cpp), from the
    templates and op strings of a torch build, filled in as that function fills them."""

    # each piece's template: text only it has among the library's strings. The common types
    # and the vectorized kernel make the source; the rest are values put into it.
    PIECES = {"common_types": ("${half_string}", "${cmath_string}"),
              "vectorized_kernel": ("_vectorized${vec_size}_kernel",),
              "call_functor": ("out0[j] = ${name}<${compute_type}>(",),
              "load_support": ("struct LoadImpl",),
              "half": ("struct alignas(2) Half {",),
              "bfloat16": ("struct alignas(2) BFloat16 {",),
              "cmath": ("namespace std {", "using ::exp;")}

    def __init__(self, strings):
        self.strings = strings
        self.pieces = {piece: self._one(lambda text, marks=marks: all(m in text for m in marks),
                                        f"the jiterator's {piece} template")
                       for piece, marks in self.PIECES.items()}

    @classmethod
    def from_library(cls, library):
        return cls(library_strings(library))

    def _one(self, matches, what):
        found = {text for text in self.strings if matches(text)}
        if len(found) != 1:
            raise LookupError(f"{len(found)} strings of the library are {what}, not 1 (a torch "
                              "whose jiterator this tool does not know?)")
        return found.pop()

    def functor(self, name):
        """The op's string: the literal that defines the template function ``name`` (one
        ``jiterator_stringify`` of Math.cuh, or ``i0e_string`` of Math.h, preprocessed)."""
        definition = re.compile(r"template ?<typename T> (?:__attribute__\(\(host\)\) "
                                rf"__attribute__\(\(device\)\) )?T {re.escape(name)}\(")
        return self._one(lambda text: definition.search(text), f"the definition of {name}")

    def source(self, name, inputs, dtype, functor=None):
        """(kernel's name, CUDA source) of the jiterator's kernel calling ``name`` on ``inputs``
        contiguous tensors of ``dtype``, returning one of ``dtype``."""
        scalar = _JIT_TYPE[dtype]
        # calc_thread_work_size: 8 elements a thread but for 1-byte types; a vector of 16 bytes
        # (launch_jitted_vectorized_kernel), at most 8 elements (can_vectorize_up_to)
        work, vector = 8, min(16 // dtype.itemsize, 8)
        env = {"index_type": "unsigned int", "nInputs": str(inputs), "nOutputs": "1",
               "scalar_type": scalar, "result_type": scalar,
               # toOpMathType: Half and BFloat16 compute in float
               "compute_type": "float",
               "functor": self.functor(name) if functor is None else functor, "name": name,
               "cmath_string": self.pieces["cmath"], "thread_work_size": str(work),
               "vec_size": str(vector), "extra_params": "", "extra_args": "",
               "declare_load_arrays": "".join(f"{scalar} arg{i}[{work}];\n"
                                              for i in range(inputs)),
               "declare_store_arrays": f"{scalar} out0[{work}];\n",
               "args": ", ".join(f"arg{i}[j]" for i in range(inputs)),
               "half_string": self.pieces["half"] if scalar == "at::Half" else "",
               "bfloat16_string": self.pieces["bfloat16"] if scalar == "at::BFloat16" else "",
               # complex types' and dynamic casting's only
               "traits_string": "", "complex_body_string": "", "complex_math_string": "",
               "complex_half_body_string": "",
               "load_support": self.pieces["load_support"],
               "vector_inputs": "".join(
                   f"auto * input{i} = reinterpret_cast<const scalar_t*>(data[{i}+1]) + "
                   "block_work_size * idx;\n" for i in range(inputs)),
               "vector_outputs": "vec_t_output* to_0 = reinterpret_cast<vec_t_output*>(data[0])"
                                 " + block_work_size / vec_size * idx;\n",
               "load_vectorized_inputs": "".join(
                   f"const auto vec{i} = load_vector<vec_size>(input{i}, thread_idx);\n"
                   f"#pragma unroll\nfor (int j=0; j < vec_size; j++){{\n"
                   f"  arg{i}[vec_size * i + j] = vec{i}.val[j];\n}}\n" for i in range(inputs)),
               "store_vectorized_outputs": "#pragma unroll\nfor (int j=0; j<vec_size; j++){\n"
                                           "v.val[j] = out0[vec_size * i + j];\n}\n"
                                           "to_0[thread_idx] = v;\n",
               "load_unrolled_inputs": "".join(
                   f"arg{i}[j] = load<{scalar}>(data[{i + 1}], linear_idx);\n"
                   for i in range(inputs)),
               "store_unrolled_outputs": f"store<{scalar}>(out0[j], data[0], linear_idx);\n"}
        env["call_functor"] = format_code_template(self.pieces["call_functor"], env)
        code = format_code_template(
            self.pieces["common_types"] + self.pieces["vectorized_kernel"], env)
        return f"{name}_vectorized{vector}_kernel", code

    def nvcc_source(self, name, inputs, dtype):
        """(kernel's name, ``source`` as nvcc compiles it to NVRTC's SASS). NVRTC compiles it
        with ``-default-device`` and no host headers; nvcc takes a function without an
        execution space for a host one and includes the host's <stdint.h> and <math.h>. So the
        op string's templates are marked ``__device__``, the source's own typedefs renamed
        (its ``int64_t`` is ``long long``, the host's ``long``), and the host's INFINITY and
        NAN undefined before the source defines its own."""
        functor = re.sub(r"(template\s*<[^<>]*>)(?!\s*(?:__attribute__|__device__|__host__))",
                         r"\1 __device__", self.functor(name))
        kernel, code = self.source(name, inputs, dtype, functor)
        typedefs = re.findall(r"^\s*typedef [\w ]+ (\w+);", code, flags=re.M)
        preamble = "".join(f"#define {t} jiterator_{t}\n" for t in typedefs)
        return kernel, "#undef INFINITY\n#undef NAN\n" + preamble + code


# the options the jiterator gives NVRTC (jit_pwise_function: -std=c++17 and -DNDEBUG; its
# -default-device is nvcc_source's work) and NVRTC's math defaults, said out loud
NVRTC_FLAGS = ("-std=c++17", "-DNDEBUG", "--fmad=true", "--ftz=false", "--prec-div=true",
               "--prec-sqrt=true")


class JiteratorKernels:
    """PyTorch's jiterator kernels for sm_90: their sources, from ``library``, compiled by
    ``nvcc``."""

    def __init__(self, library, nvcc):
        self.jiterator = JiteratorSource.from_library(library)
        self.nvcc = str(nvcc)
        release = re.search(r"\bV(\d+\.\d+\.\d+)", subprocess.run(
            [self.nvcc, "--version"], capture_output=True, text=True, check=True).stdout)
        self.version = release.group(1) if release else "?"

    def sass(self, name, inputs, dtype):
        """(what the kernel is, its SASS) of the jiterator's kernel calling ``name``."""
        kernel, code = self.jiterator.nvcc_source(name, inputs, dtype)
        with tempfile.TemporaryDirectory() as scratch:
            source = pathlib.Path(scratch) / "kernel.cu"
            cubin = source.with_suffix(".cubin")
            source.write_text(code)
            done = subprocess.run([self.nvcc, "-cubin", "-arch=sm_90", *NVRTC_FLAGS, "-o",
                                   str(cubin), str(source)], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"nvcc failed on {kernel}: {done.stderr[-2000:]}")
            sections = text_sections(_tool("nvdisasm", "-c", cubin))
        return f"{kernel} (jiterator source, nvcc {self.version})", sections[kernel]


# ---- the table ----------------------------------------------------------------------------
def rows(ops, dtypes, torch_kernels, library, jiterator_kernels=None):
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
            try:
                if torch_kernels is not None and function is not None:
                    found = torch_kernels.sass(function, inputs, dtype, which)
                elif jiterator_kernels is not None and op_name in JITERATED:
                    found = jiterator_kernels.sass(JITERATED[op_name], inputs, dtype)
            except Exception as exc:  # noqa: BLE001 - as above
                failure = " ".join(str(exc).split())[:300]
                row["error"] = f"PyTorch's: {type(exc).__name__}: {failure}"
            if found is not None:
                row["pytorch_kernel"] = found[0]
                (row["pytorch"], row["pytorch_per_element"], row["pytorch_mufu"],
                 row["pytorch_branches"]) = census(found[1], inputs, dtype)
            elif function is None:
                row["pytorch_kernel"] = "compiled at run time (jiterator)"
            yield row


def summary(table):
    """Markdown: per op and dtype, instructions per element, ours and PyTorch's."""
    compilers = sorted({found.group(1) for found in (
        re.search(r"jiterator source, (nvcc [\w.?]+)", row["pytorch_kernel"]) for row in table)
        if found})
    jiterator = ("PyTorch compiles that kernel at run time, with NVRTC; its column counts "
                 "the kernel the jiterator writes for the call "
                 "(`NAME_vectorized8_kernel`, `_vectorized4_` in float32: the op's string "
                 "computed in float, 8 elements a thread in 16-byte vectors), its source made "
                 "as torch's `jit_utils.cpp` makes it from the templates and op strings in "
                 f"`libtorch_cuda.so`, compiled for sm_90 by {' and '.join(compilers)} "
                 "with NVRTC's defaults (FMA contraction, no fast math, IEEE division and "
                 "square root); NVRTC 13.0 makes the same instructions of that source."
                 if compilers else
                 "PyTorch compiles that kernel at run time; it is not in the library "
                 "(`--nvcc` compiles the jiterator's source).")
    lines = ["# Instructions per element (sm_90 SASS, main path)", "",
             f"Ours: Triton {table[0]['triton']}, the launch for an {SHAPE[0]}x{SHAPE[1]} call. "
             f"PyTorch's: `{table[0]['torch_lib'] or 'not read (no --torch-lib)'}`, "
             "`vectorized_elementwise_kernel<8>`. Made by `python -m benchmarks.instructions`.",
             "", "Static counts of each kernel's main path, per element: a branch around a rare "
             "slow path (sin's and cos's reduction of huge arguments, a correctly rounded "
             "division's) counts that path once; elements per thread are the "
             "inputs' bits the path loads over an element's (the table of 2/pi bits that "
             "reduction reads, `LDG.E.CONSTANT`, is not an input). A kernel that branches or "
             "loops on its values counts each branch and a loop's body once: the Bessel "
             "functions (ours per warp into either series or both in one recurrence, in "
             "PTX, and per block in float64; PyTorch's per element into either) and digamma "
             "(a loop in both, on a step count taken once per block in ours) do not compare "
             "by these counts; their work per element does "
             "(`benchmarks/NOTES.md`). Ours is the kernel that computes: the dense float16 and "
             "bfloat16 calls of the ops that look their results up "
             "(`PointwiseOp.looks_up`: digamma, the Bessel functions, acosh, asinh, "
             "atanh, sinc and selu, the last five in float16 from 4M elements; erfinv and "
             "log1p in bfloat16; logit without eps and softplus at its defaults, float16 "
             "from 4M elements) gather them "
             "from a table that kernel made once. MUFU: the special-function "
             "unit's instructions (exponentials, reciprocals, roots) per thread. jiterator: "
             + jiterator,
             "", "| op | dtype | ours | PyTorch's | ours / PyTorch's | MUFU ours / PyTorch's |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in table:
        if row["error"]:
            lines.append(f"| `{row['op']}` | {row['dtype']} | error: {row['error']} | | | |")
            continue
        theirs = row["pytorch_per_element"]
        ratio = (f"{float(row['ours_per_element']) / float(theirs):.2f}" if theirs else "–")
        jiterated = "jiterator" in row["pytorch_kernel"]
        shown = (f"{theirs} (jiterator)" if theirs and jiterated else
                 theirs or ("jiterator" if jiterated else "–"))
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
    parser.add_argument("--nvcc", type=pathlib.Path, default=None, metavar="PATH",
                        help="CUDA's nvcc (13.0, as the device's torch): compiles the kernels "
                             "PyTorch's jiterator writes for " + ", ".join(JITERATED) +
                             " from --torch-lib's templates, for PyTorch's column")
    parser.add_argument("--out", type=pathlib.Path, default=None, metavar="DIR",
                        help="where instructions.csv and .md go (default: a fresh temporary "
                             "directory)")
    args = parser.parse_args(argv)
    if args.nvcc is not None and args.torch_lib is None:
        parser.error("--nvcc needs --torch-lib: the jiterator's templates and op strings are "
                     "read from libtorch_cuda.so")
    return args


def main(argv=None):
    args = parse_args(argv)
    triton.runtime.driver.set_active(StandInDriver())
    ops = args.op or list(OPS)
    dtypes = [getattr(torch, d) for d in args.dtype] or list(DTYPES)
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="instructions_"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        kernels = jiterated = None
        if args.torch_lib is not None:
            kernels = TorchKernels(args.torch_lib, args.cubins or scratch)
        if args.nvcc is not None and any(op in JITERATED for op in ops):
            jiterated = JiteratorKernels(args.torch_lib, args.nvcc)
        table = list(rows(ops, dtypes, kernels, args.torch_lib, jiterated))
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
