"""The report's PNG plots, drawn from ``report.Data``.

- ``overview_L.png``: one row per family, one dot per op: gems' speedup over eager (and over
  torch.compile) at L on a log axis, with the family's geometric mean.
- ``family_<name>.png``: one figure per family, its ops sorted by speedup over eager at L,
  three panels sharing the op axis: speedup at L, fraction of the copy ceiling at L, host time
  per call at S.
- ``<op>.png`` (on request): one op's p50 time and speedup against size, one column per dtype.

The drawing functions take the module ``pyplot()`` returns; it raises ``Unavailable``, with the
message to show, when matplotlib (in the ``bench`` extra) is not installed. matplotlib is
imported only inside functions, so that this module imports without it.
"""

from benchmarks.report import geomean

_ROW_INCHES = 0.2  # height of one op's row: room for a 7-point label
_NICE = [k * 10.0 ** e for e in range(-3, 5) for k in (1, 2, 5)]  # log-axis ticks
_FASTER, _SLOWER = "tab:green", "tab:red"
_PROVIDER_STYLE = {"eager": ("black", "o"), "compile": ("tab:purple", "D"),
                   "gems": ("tab:blue", "s"), "gems_dispatch": ("tab:orange", "^")}


class Unavailable(RuntimeError):
    """matplotlib cannot be imported; the message says how to install it."""


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise Unavailable(f"plots need matplotlib ({exc}); install it with "
                          "pip install -e '.[bench]'") from exc
    return plt


def family_label(family):
    """'PointwiseOp' -> 'pointwise' (file names and titles)."""
    return family.removesuffix("Op").lower()


# ---- axes ---------------------------------------------------------------------------------
def _log_axis(ax, lo, hi, axis="x", unit=""):
    """A log axis from lo to hi with 1-2-5 ticks labelled plainly (no minor labels: those are
    what overlapped)."""
    import matplotlib.ticker as ticker
    set_scale, set_lim, target = ((ax.set_xscale, ax.set_xlim, ax.xaxis) if axis == "x"
                                  else (ax.set_yscale, ax.set_ylim, ax.yaxis))
    set_scale("log")
    set_lim(lo, hi)
    ticks = [t for t in _NICE if lo <= t <= hi]
    target.set_major_locator(ticker.FixedLocator(ticks))
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}{unit}"))
    target.set_minor_formatter(ticker.NullFormatter())


def _speedup_limits(values):
    """Log-axis limits covering every value and 0.5× to 2× at least (1.0 never at an edge),
    with room on the right for a column of labels."""
    values = [v for v in values if v]
    return min(values + [0.5]) / 1.5, max(values + [2.0]) * 2.0


def _stripe(ax, n):
    """Shade every other row, so the eye can follow an op across panels."""
    for i in range(1, n, 2):
        ax.axhspan(i - 0.5, i + 0.5, color="0.94", zorder=0)
    ax.set_ylim(n - 0.5, -0.5)  # the first op on top


# ---- the overview -------------------------------------------------------------------------
def overview(plt, data, path):
    """Per family, every op's speedup at L as a dot and the family's geometric mean as a bar,
    against eager and (where measured) torch.compile."""
    versus = [v for v in ("eager", "compile")
              if any(data.op_speedup(op, "L", v) for op in data.ops)]
    by_family = {}
    for op in data.ops:
        by_family.setdefault(data.family[op], []).append(op)
    families = sorted(by_family, key=lambda f: geomean(
        [data.op_speedup(op, "L") for op in by_family[f]]) or 0, reverse=True)
    if not versus or not families:
        return None
    fig, axes = plt.subplots(1, len(versus), figsize=(5.5 * len(versus) + 1.5,
                                                      max(3.0, 0.5 * len(families) + 1.6)),
                             sharey=True, squeeze=False)
    speedups = {(f, v): [s for op in by_family[f] if (s := data.op_speedup(op, "L", v))]
                for f in families for v in versus}
    lo, hi = _speedup_limits([s for values in speedups.values() for s in values])
    for ax, v in zip(axes[0], versus):
        _stripe(ax, len(families))
        for row, f in enumerate(families):
            values = speedups[(f, v)]
            # a fixed spread within the row, so that equal speedups do not hide each other
            offsets = [((i * 0.618) % 1 - 0.5) * 0.5 for i in range(len(values))]
            ax.scatter(values, [row + o for o in offsets], s=12, alpha=0.7, zorder=3,
                       color=[_FASTER if s >= 1 else _SLOWER for s in values])
            if values:
                mean = geomean(values)
                ax.plot([mean, mean], [row - 0.35, row + 0.35], color="black", linewidth=2.5,
                        zorder=4)
                ax.text(0.99, row, f"{mean:.2f}×", fontsize=8, ha="right", va="center",
                        fontweight="bold", transform=ax.get_yaxis_transform())
        ax.axvline(1.0, color="black", linewidth=0.8)
        _log_axis(ax, lo, hi, unit="×")
        ax.set_title(f"gems vs {v} at L (right of 1×: gems faster)", fontsize=10)
        ax.set_xlabel(f"speedup = {v} p50 / gems p50, per op the geomean over dtypes", fontsize=8)
        ax.tick_params(labelsize=8)
    labels = []
    for f in families:
        below = sum(s < 1 for s in speedups[(f, "eager")]) if "eager" in versus else 0
        labels.append(f"{family_label(f)}\n{len(by_family[f])} ops, {below} < 1× eager")
    axes[0][0].set_yticks(range(len(families)), labels, fontsize=8)
    fig.suptitle("Speedup at L by family (dots: ops; black bar: geometric mean)", fontsize=11)
    return _save(fig, path)


# ---- one figure per family ----------------------------------------------------------------
def family_figure(plt, data, family, path):
    """The family's ops, sorted by speedup over eager at L (ops without it last), in three
    panels sharing the op axis."""
    import matplotlib.patches as patches
    ops = [op for op in data.ops if data.family[op] == family]
    ops.sort(key=lambda op: (data.op_speedup(op, "L") is None, data.op_speedup(op, "L") or 0))
    n = len(ops)
    fig, (speed, band, host) = plt.subplots(
        1, 3, figsize=(14, max(3.5, _ROW_INCHES * n + 1.8)), sharey=True,
        gridspec_kw={"width_ratios": (1.4, 1, 1)})
    rows = range(n)
    for ax in (speed, band, host):
        _stripe(ax, n)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", color="0.85", linewidth=0.6)
        ax.set_axisbelow(True)
    speed.set_yticks(rows, ops, fontsize=7 if n > 40 else 8)

    # speedup: bars grow from 1.0, right for faster; compile as a diamond
    eager = [data.op_speedup(op, "L") for op in ops]
    compiled = [data.op_speedup(op, "L", "compile") for op in ops]
    lo, hi = _speedup_limits(eager + compiled)
    speed.barh(rows, [(v or 1) - 1 for v in eager], left=1, height=0.7, zorder=2,
               color=[_FASTER if (v or 1) >= 1 else _SLOWER for v in eager])
    for color, label in ((_FASTER, "vs eager: gems faster"), (_SLOWER, "slower")):
        speed.add_patch(patches.Rectangle((1, 0), 0, 0, color=color, label=label))  # legend only
    # the values as a column at the right edge, clear of the bars and diamonds
    for row, v in enumerate(eager):
        if v:
            speed.text(0.995, row, f"{v:.2f}×" if v >= 0.01 else f"{v:.2g}×", fontsize=6.5,
                       va="center", ha="right", transform=speed.get_yaxis_transform())
    if any(compiled):
        speed.scatter([v for v in compiled if v], [r for r, v in zip(rows, compiled) if v],
                      marker="D", s=14, color=_PROVIDER_STYLE["compile"][0], zorder=4,
                      label="vs torch.compile")
    speed.axvline(1.0, color="black", linewidth=0.8)
    _log_axis(speed, lo, hi, unit="×")
    speed.set_title("speedup at L (right of 1×: gems faster)", fontsize=9)

    # bandwidth and host time: gems as bars, eager and the dispatch sample as dots
    def bars_and_dots(ax, size, column, color, unit_line=None):
        values = {p: [data.value(op, p, size, column) for op in ops]
                  for p in ("gems", "eager", "gems_dispatch")}
        ax.barh(rows, [v or 0 for v in values["gems"]], height=0.7, color=color, zorder=2,
                label="gems")
        for p in ("eager", "gems_dispatch"):
            points = [(v, r) for r, v in zip(rows, values[p]) if v is not None]
            if points:
                style = _PROVIDER_STYLE[p]
                ax.scatter(*zip(*points), s=12, color=style[0], marker=style[1], zorder=4,
                           label="gems under use_gems()" if p == "gems_dispatch" else p)
        top = max([v for vs in values.values() for v in vs if v is not None] + [unit_line or 0])
        ax.set_xlim(0, top * 1.08 or 1)
        if unit_line:
            ax.axvline(unit_line, color="black", linewidth=0.8)

    import matplotlib.ticker as ticker
    bars_and_dots(band, "L", "fraction", "tab:cyan", unit_line=1.0)
    band.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    band.set_title("fraction of the copy ceiling at L (median over dtypes)", fontsize=9)
    bars_and_dots(host, "S", "host_us", "tab:orange")
    host.set_title("host time per call at S, µs (median over dtypes)", fontsize=9)
    for ax in (speed, band, host):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0 + 0.35 / n),
                      ncol=3, frameon=False, borderaxespad=1.2)
    fig.suptitle(f"{family_label(family)} ({n} ops), sorted by speedup over eager at L",
                 fontsize=11)
    return _save(fig, path)


# ---- one op across sizes ------------------------------------------------------------------
def op_figure(plt, data, op, path):
    """p50 time (top) and gems' speedup (bottom) against size, one column per dtype."""
    dtypes = [d for d in data.dtypes if any(data.get(op, p, d, s) for p in data.providers
                                             for s in data.sizes)]
    providers = [p for p in data.providers
                 if any(data.p50(op, p, d, s) for d in dtypes for s in data.sizes)]
    fig, axes = plt.subplots(2, len(dtypes), figsize=(3.6 * len(dtypes) + 1, 6.5),
                             sharex=True, sharey="row", squeeze=False)
    positions = range(len(data.sizes))
    shapes = [next((r["shape"] for d in dtypes for p in providers
                    if (r := data.get(op, p, d, s)) and r.get("shape")), "") for s in data.sizes]
    times = [data.p50(op, p, d, s) * 1e3 for p in providers for d in dtypes for s in data.sizes
             if data.p50(op, p, d, s)]
    speedups = []
    for col, dtype in enumerate(dtypes):
        time_ax, speed_ax = axes[0][col], axes[1][col]
        for p in providers:
            points = [(x, t * 1e3) for x, s in zip(positions, data.sizes)
                      if (t := data.p50(op, p, dtype, s))]
            if points:
                time_ax.plot(*zip(*points), label=p, **_line(p))
        by_size = [{v: data.speedup(op, dtype, s, v) for v in ("eager", "compile")}
                   for s in data.sizes]
        for versus in ("eager", "compile"):
            points = [(x, at[versus]) for x, at in zip(positions, by_size) if at[versus]]
            if not points:
                continue
            speedups += [v for _, v in points]
            color = _PROVIDER_STYLE[versus][0]
            speed_ax.plot(*zip(*points), label=f"gems vs {versus}", **_line(versus))
            for x, v in points:
                # the higher of the two values labelled above its point, the lower below (a
                # tie: eager above)
                other = by_size[x]["compile" if versus == "eager" else "eager"]
                above = other is None or v > other or (v == other and versus == "eager")
                speed_ax.annotate(f"{v:.2f}×", (x, v), textcoords="offset points",
                                  xytext=(6, 4 if above else -11), fontsize=7, color=color)
        speed_ax.axhline(1.0, color="black", linewidth=0.8)
        time_ax.set_title(dtype, fontsize=10)
        for ax in (time_ax, speed_ax):
            ax.grid(color="0.88", linewidth=0.6)
            ax.tick_params(labelsize=8)
        speed_ax.set_xticks(list(positions), [f"{s}\n{shape}" for s, shape in
                                              zip(data.sizes, shapes)])
        speed_ax.set_xlim(-0.3, len(data.sizes) - 0.6)
    if times:
        _log_axis(axes[0][0], min(times) / 1.5, max(times) * 1.5, axis="y")
    _log_axis(axes[1][0], *_speedup_limits(speedups), axis="y", unit="×")
    axes[0][0].set_ylabel("p50 time, µs", fontsize=9)
    axes[1][0].set_ylabel("gems speedup\n(above 1×: gems faster)", fontsize=9)
    for row in axes:  # one legend per row, of every line any of its panels drew
        labelled = {}
        for ax in row:
            labelled.update(zip(*reversed(ax.get_legend_handles_labels())))
        row[-1].legend(labelled.values(), labelled.keys(), fontsize=7, loc="upper left",
                       bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(f"{op} ({family_label(data.family[op])}): time and speedup by size",
                 fontsize=11)
    return _save(fig, path)


def _line(provider):
    """A provider's line: compile's dashed with hollow markers, so that eager's shows through
    where the two meet."""
    color, marker = _PROVIDER_STYLE.get(provider, ("gray", "o"))
    hollow = provider == "compile"
    return {"color": color, "marker": marker, "linestyle": "--" if hollow else "-",
            "fillstyle": "none" if hollow else "full"}


def _save(fig, path):
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
