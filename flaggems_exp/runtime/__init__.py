"""Runtime helpers shared by every family, layered bottom-up:
device (where kernels run) -> promotion (dtypes) -> geometry (shapes, strides, overlap)
-> errors (PyTorch's messages) -> special (pure-Triton math)."""
