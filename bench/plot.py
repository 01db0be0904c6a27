#!/usr/bin/env python3
"""Draws relattn-bench's JSON lines as a PNG chart.

usage: python3 bench/plot.py RESULTS.jsonl OUT.png

Prefill panels (one per head dim x mask, one row per thread count): useful
GFLOP/s against sequence length n = n_q = n_kv for every scheme (solid: f16
inputs, dashed: f32), XNNPACK's unfused f32 attention (black) and the measured
FP32 FMA peak (red). A decode panel, if there are decode results: K+V GB/s
against the cache length m, with the measured DRAM read bandwidth.

Needs Debian's python3-matplotlib; without it, prints one line and exits 3
(relattn-bench --chart treats that as a note, not a failure).
"""
import json
import sys

SCHEME_COLORS = {"none": "tab:blue", "alibi": "tab:orange", "t5": "tab:green", "shaw": "tab:purple",
                 "rope": "tab:brown", "shawvec": "tab:pink"}
DTYPE_STYLES = {"f16": "-", "f32": "--", "i8": ":"}  # i8: Q, K int8 (decode: K), V f16


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def series(records, x_key, y_key, **match):
    """(x, y) sorted by x, of the records whose fields equal `match`."""
    points = sorted((r[x_key], r[y_key]) for r in records
                    if y_key in r and all(r.get(k) == v for k, v in match.items()))
    return [p[0] for p in points], [p[1] for p in points]


def best_limit(records, impl, threads, key):
    """The best measured limit (over SIMD targets) for a thread count, and its target."""
    rows = [r for r in records if r.get("case") == "limits" and r.get("impl") == impl
            and r.get("threads") == threads and key in r]
    if not rows:
        return None, None
    best = max(rows, key=lambda r: r[key])
    return best[key], best.get("target", "")


def set_top(ax):
    """y from 0 to a little above the highest line (limits included)."""
    tops = [max(line.get_ydata()) for line in ax.get_lines() if len(line.get_ydata())]
    if tops:
        ax.set_ylim(0, max(tops) * 1.12)


def draw_prefill(ax, records, threads, head_dim, mask):
    for scheme, color in SCHEME_COLORS.items():
        for dtype, style in DTYPE_STYLES.items():
            x, y = series(records, "n_q", "gflops", impl="relattn", kind="prefill", heads=8,
                          threads=threads, head_dim=head_dim, mask=mask, scheme=scheme, dtype=dtype)
            if x:
                ax.plot(x, y, style, color=color, marker="o", ms=4, label=f"relattn {scheme} {dtype}")
    x, y = series(records, "n_q", "gflops", impl="xnnpack", kind="prefill", heads=8,
                  threads=threads, head_dim=head_dim, mask=mask)
    if x:
        ax.plot(x, y, "-.", color="black", marker="x", label="XNNPACK unfused f32 (no bias)")
    peak, target = best_limit(records, "fma_peak", threads, "gflops")
    if peak:
        ax.axhline(peak, color="red", ls=":", label="measured FMA peak")
        ax.text(0.01, peak, f"peak {peak:.0f} ({target})", transform=ax.get_yaxis_transform(),
                color="red", va="bottom", fontsize=8)
    set_top(ax)
    ax.set_title(f"prefill d={head_dim} {mask}, {threads} thread{'s' * (threads > 1)}", fontsize=10)
    ax.set_xlabel("n = n_q = n_kv")
    ax.set_ylabel("useful GFLOP/s")


def draw_decode(ax, records, threads):
    for scheme, color in SCHEME_COLORS.items():
        for dtype in ("f16", "i8"):
            x, y = series(records, "n_kv", "gbps", impl="relattn", kind="decode", threads=threads,
                          scheme=scheme, dtype=dtype)
            if x:
                ax.plot(x, y, DTYPE_STYLES[dtype], color=color, marker="o", ms=4,
                        label=f"relattn {scheme} {dtype}")
    x, y = series(records, "n_kv", "gbps", impl="xnnpack", kind="decode", threads=threads)
    if x:
        ax.plot(x, y, "-.", color="black", marker="x", label="XNNPACK unfused f32 (no bias)")
    bw, _ = best_limit(records, "dram_read", threads, "gbps")
    if bw:
        ax.axhline(bw, color="firebrick", ls=":", label="measured DRAM read")
        ax.text(0.01, bw, f"DRAM {bw:.1f} GB/s", transform=ax.get_yaxis_transform(),
                color="firebrick", va="bottom", fontsize=8)
    set_top(ax)
    ax.set_title(f"decode 32/8 heads d=128, {threads} thread{'s' * (threads > 1)}", fontsize=10)
    ax.set_xlabel("m = n_kv (cache length)")
    ax.set_ylabel("K+V GB/s (bytes in each impl's dtype)")


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart: python3-matplotlib is not installed (apt-get install python3-matplotlib); "
              "no chart written")
        return 3
    records = load(argv[1])
    prefill = [r for r in records if r.get("kind") == "prefill" and r.get("heads") == 8]
    panels = sorted({(r["head_dim"], r["mask"]) for r in prefill},
                    key=lambda p: (p[0], p[1] != "bidir"))
    has_decode = any(r.get("kind") == "decode" for r in records)
    threads = sorted({r["threads"] for r in records if r.get("kind") in ("prefill", "decode")})
    columns = len(panels) + has_decode
    if not columns:
        print("chart: no prefill or decode results to draw", file=sys.stderr)
        return 1
    fig, axes = plt.subplots(len(threads), columns, figsize=(4.6 * columns, 3.8 * len(threads)),
                             squeeze=False)
    for row, t in enumerate(threads):
        for col, (head_dim, mask) in enumerate(panels):
            draw_prefill(axes[row][col], records, t, head_dim, mask)
        if has_decode:
            draw_decode(axes[row][-1], records, t)
        for ax in axes[row]:
            ax.set_xscale("log", base=2)
            xs = sorted({int(v) for line in ax.get_lines() if line.get_marker() not in (None, "None", "")
                         for v in line.get_xdata()})
            if xs:
                ax.set_xticks(xs, [str(v) for v in xs])
            ax.grid(alpha=0.3)
    handles, labels = {}, []
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = h
                labels.append(label)
    legend_columns = max(1, min(len(labels), int(4.6 * columns / 1.9)))
    fig.legend([handles[l] for l in labels], labels, loc="lower center",
               ncol=legend_columns, fontsize=8, frameon=False)
    targets = sorted({r["target"] for r in records if r.get("impl") == "relattn" and "target" in r})
    fig.suptitle("relattn-bench: useful GFLOP/s (causal counts visible pairs only) and decode "
                 f"K+V bandwidth; relattn target {', '.join(targets)}", fontsize=12)
    legend_rows = -(-len(labels) // legend_columns)
    fig.tight_layout(rect=(0, 0.03 + 0.03 * legend_rows / len(threads), 1, 0.95))
    fig.savefig(argv[2], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
