"""Registry-driven benchmarks of flaggems_exp against PyTorch.

    python -m benchmarks.run            # time every registered op; appends to results/results.csv
    python -m benchmarks.report         # results/REPORT.md (and PNG plots) from that CSV

Modules: ``cases`` (inputs, eager baseline, byte counts, correctness), ``timing`` (do_bench
wrapper, host timing, copy ceiling), ``providers`` (eager, compile, gems, gems_dispatch),
``warmup`` (parallel compile warm-up), ``run`` (CLI, CSV), ``report`` (markdown) and
``plots`` (its PNG figures).
"""
