"""The gather skeleton's alignment constexprs, checked against the launch they describe.

The compiler takes them on trust: a wrong one makes a GPU load and store misaligned vectors
(wrong values), which the interpreter never shows. Along every dim the kernel walks, but the
side's unit-stride one, the stride must be a multiple of the side's claim (offsets being sums
of coordinates times strides, so is every offset it hints); a DENSE side's claim is of the
program's own offset alone, its tile being one run of memory. A dense input, and any stacked
tile, is read as runs of memory in which each column is the output's own: its columns must be
unmapped (a pad or an upsampling reads other input columns, or fewer).
"""
from flaggems_exp.families import gather_kernel


def record_launches(monkeypatch):
    """The (sizes, out strides, in strides, constexprs) of every gather launch from now on."""
    launched = []
    launch = gather_kernel.launch
    names = gather_kernel._gather_kernel.arg_names

    def spy(name, kernel, grid, *args, **options):
        bound = dict(zip(names, args))
        launched.append((bound["shape"], bound["out_strides"], bound["in_strides"], options))
        return launch(name, kernel, grid, *args, **options)

    monkeypatch.setattr(gather_kernel, "launch", spy)
    return launched


def assert_true_claims(sizes, out_strides, in_strides, options):
    columns, rows = len(sizes) - 1, len(sizes) - 2
    out_unit = columns if options["OUT_UNIT"] else None
    in_unit = {1: rows, 2: columns}.get(options["IN_UNIT"])
    for strides, unit, claim, dense in (
            (out_strides, out_unit, options["OUT_ALIGN"], options["OUT_DENSE"]),
            (in_strides, in_unit, options["IN_ALIGN"], options["IN_DENSE"])):
        assert unit is not None or claim == 1
        claimed = range(options["PROGRAM_DIMS"]) if dense else range(len(sizes))
        assert all(strides[d] % claim == 0 for d in claimed if d != unit and sizes[d] > 1), \
            (sizes, strides, options)
    if options["IN_DENSE"] or options["BLOCK_P"] > 1:
        assert not options["MAPPED"] >> columns & 1, (sizes, in_strides, options)
    if options["IN_DENSE"]:  # the tile's columns are runs of its rows
        assert in_strides[columns] == sizes[rows], (sizes, in_strides, options)
