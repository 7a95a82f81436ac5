"""PyTorch's own sample inputs through our ops: every op with an entry in PyTorch's OpInfo
database (``torch.testing._internal.common_methods_invocations.op_db``, the inputs PyTorch's
own test suite calls its ops with) is called with each of that entry's samples in float16,
bfloat16 and float32, and compared with PyTorch as every other test compares
(``testing.check_call``: the same error, or the same values, dtype and shape; a rejected call
leaves its inputs as they were). An in-place form of the op takes the same samples.

Left out of a sample: complex tensors (a direct call raises ``NotCovered`` for them; under
``enable()`` PyTorch's kernel serves them, tests/test_handover.py) and the ``requires_grad``
keyword of factories' samples (a keyword of PyTorch's Python functions, not of the aten op).
"""
import warnings

import pytest
import torch

from flaggems_exp import REGISTRY, testing
from flaggems_exp.testing import Call, check_call

import generic_checks as checks

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.testing._internal.common_methods_invocations import op_db
except Exception as error:  # noqa: BLE001 - an internal module: any failure to import skips
    op_db, IMPORT_ERROR = [], f"{type(error).__name__}: {error}"
else:
    IMPORT_ERROR = None

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
OPS = {op.name: op for op in dict.fromkeys(REGISTRY.values())}


def our_op(info):
    """Our op of an OpInfo entry (its name, its aten name, or its special_ name), or None."""
    last = info.name.split(".")[-1]
    for name in (info.name, info.aten_name, info.name.replace(".", "_"), "special_" + last):
        if name in OPS:
            return OPS[name]
    return None


def entries():
    """(our op, OpInfo entry, dtype) for every entry naming one of our ops and each of its
    floating dtypes PyTorch runs on the CPU."""
    for info in op_db:
        op = our_op(info)
        if op is None:
            continue
        for dtype in DTYPES:
            if dtype in info.supported_dtypes("cpu"):
                yield pytest.param(op, info, dtype, id=f"{op.name}-{info.name}"
                                   f"{'-' + info.variant_test_name if info.variant_test_name else ''}"
                                   f"-{str(dtype)[6:]}")


def calls(info, dtype):
    """The entry's samples in ``dtype`` as calls of the aten op, or None for a sample left out."""
    for sample in info.sample_inputs("cpu", dtype, requires_grad=False):
        args = (sample.input, *sample.args)
        kwargs = {k: v for k, v in sample.kwargs.items() if k != "requires_grad"}
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]
        if any(t.is_complex() for t in tensors):
            continue
        yield Call(args, kwargs, info.name)


def unspecified(op):
    """Whether the op's values are unspecified (an uninitialised factory: ``empty_permuted``)."""
    return testing.twin(op).family == "CreationOp" and testing.twin(op).value is None


def check_layout(op, call):
    """PyTorch's error, or its result's dtype, shape, strides and device kind: all there is to
    compare of an uninitialised tensor."""
    theirs = testing.run(testing.pytorch_op(op), call)
    ours = testing.run(op, testing.on_device(call))
    if isinstance(theirs, Exception):
        testing.assert_same_error(ours, theirs)
        return
    assert not isinstance(ours, Exception), f"raised {type(ours).__name__}: {ours}"
    assert ((ours.dtype, ours.shape, ours.stride(), ours.device.type)
            == (theirs.dtype, theirs.shape, theirs.stride(), checks.DEV))


@pytest.mark.skipif(IMPORT_ERROR is not None, reason=f"no OpInfo database: {IMPORT_ERROR}")
@pytest.mark.parametrize("op, info, dtype", list(entries()))
def test_pytorchs_sample_inputs(op, info, dtype):
    inplace = OPS.get(op.name + "_")
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for call in calls(info, dtype):
            if unspecified(op):
                check_layout(op, call)
            else:
                check_call(op, call, exact=checks.moves_data(op))
                if inplace is not None and testing.twin(inplace) is op:
                    check_call(inplace, call, exact=checks.moves_data(op))
            checked += 1
    assert checked, f"every sample of {info.name} in {dtype} was left out"


def test_the_database_names_most_of_our_ops():
    """The sample inputs above reach most ops: a renamed entry would silently drop its op."""
    if IMPORT_ERROR is not None:
        pytest.skip(f"no OpInfo database: {IMPORT_ERROR}")
    named = {our_op(info).name for info in op_db if our_op(info) is not None}
    assert len(named) >= 60, sorted(named)
