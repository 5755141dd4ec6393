"""The results: a Markdown table and a PNG plot (matplotlib, imported only here)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.run import PEERS, Figure, Settings


def _num(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit in ("s", "MB", "us"):
        return f"{value:.3f}" if unit == "s" else f"{value:.1f}"
    return f"{value:,.0f}"


def ratios(figures: dict[str, Figure]) -> dict[str, tuple[float, str]]:
    """Each figure's median as a ratio to its baseline's median, and the baseline's label."""
    out: dict[str, tuple[float, str]] = {}
    for f in figures.values():
        if f.baseline and f.runs and figures[f.baseline].runs:
            out[f.key] = (f.median / figures[f.baseline].median, figures[f.baseline].label)
    return out


def fastest_peer(figures: dict[str, Figure]) -> Figure | None:
    measured = [figures[f"peer_{p}"] for p in PEERS if figures[f"peer_{p}"].runs]
    return max(measured, key=lambda f: f.median, default=None)


def verdicts(figures: dict[str, Figure]) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, what it is measured against, met?) for every target of the issue."""
    r = ratios(figures)
    rows: list[tuple[str, str, str, bool | None]] = []

    def ratio_row(key: str, goal: float, text: str) -> None:
        if key in r:
            rows.append((text, f"{r[key][0]:.2f}x", r[key][1], r[key][0] >= goal))
        else:
            rows.append((text, "not measured", "", None))

    ratio_row("drain", 0.9, "drain, reservations on, strict priority >= 0.9x raw BRPOP+decode")
    ratio_row("drain_prefetch", 3.0, "batched take N=50 >= 3x raw BRPOP+decode")
    peer = fastest_peer(figures)
    if peer is not None and figures["drain"].runs:
        x = figures["drain"].median / peer.median
        rows.append(("drain >= 4x the fastest peer", f"{x:.2f}x", peer.label, x >= 4))
    ratio_row("push", 0.9, "single push >= 0.9x raw LPUSH")
    ratio_row("push_many", 0.8, "bulk push >= 0.8x raw pipelined LPUSH")
    ratio_row("depth_large", 0.9, "drain rate within 10% from 1k to a deep queue")
    ratio_row("io_oxide", 1.1, "20 ms jobs: oxide --concurrency 8 (def) >= 1.1x dramatiq -p 1 -t 8")
    ratio_row("io_oxide_async", 1.1, "20 ms jobs: oxide --concurrency 8 (async def) >= 1.1x dramatiq -p 1 -t 8")
    ratio_row("io_oxide_pool", 1.7, "20 ms jobs: --processes 2 --concurrency 8 >= 1.7x one process")
    ours, theirs = figures.get("io_oxide_rss"), figures.get("io_dramatiq_rss")
    if ours is not None and theirs is not None and ours.runs and theirs.runs:
        rows.append(
            (
                "resident memory, oxide --concurrency 8 <= dramatiq -p 1 -t 8",
                f"{ours.median:.1f} MB",
                f"{theirs.median:.1f} MB",
                ours.median <= theirs.median,
            )
        )
    for key, limit, text in (
        ("rss_growth", 10.0, "worker RSS growth < 10 MB"),
        ("rss_growth_c8", 10.0, "worker RSS growth at --concurrency 8 < 10 MB"),
        ("help", 0.3, "oxide --help < 0.3 s"),
    ):
        f = figures[key]
        if f.runs:
            rows.append((text, f"{_num(f.median, f.unit)} {f.unit}", "", f.median < limit))
        else:
            rows.append((text, "not measured", "", None))
    return rows


def table(figures: dict[str, Figure], facts: dict[str, str], settings: Settings, *, targets: bool) -> str:
    r = ratios(figures)
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{facts['command']}` ({facts['run_secs']} s). Machine: {facts['cores']} cores ({facts['cpu']}), "
        f"Python {facts['python']}, Redis {facts['redis']}, redis-py {facts['redis-py']}, hiredis {facts['hiredis']}; "
        f"peers: {facts['peers']}; {facts['date']}.",
        "",
        f"Jobs per figure: producers {settings.n_produce:,}, one-slot takes (the raw BRPOP loop, oxide's drains, "
        f"the take designs) {settings.n_take:,}, peer workers {settings.n_drain:,}, failed-job inserts "
        f"{settings.n_failed:,}; {settings.repeats} interleaved runs each; median and min-max of the runs. "
        "Ratios are medians over the median of the baseline named, all from this one run.",
        "",
        "| figure | median | min-max | unit | ratio | to |",
        "|---|---:|---:|---|---:|---|",
    ]
    for f in figures.values():
        if not f.runs:
            continue
        spread = f"{_num(min(f.runs), f.unit)}-{_num(max(f.runs), f.unit)}"
        ratio, to = r.get(f.key, (float("nan"), ""))
        ratio_text = "" if math.isnan(ratio) else f"{ratio:.2f}x"
        lines.append(f"| {f.label} | {_num(f.median, f.unit)} | {spread} | {f.unit} | {ratio_text} | {to} |")
    if targets:
        lines += ["", "## Targets", "", "| target | measured | against | met |", "|---|---:|---|---|"]
        for text, measured, against, met in verdicts(figures):
            lines.append(f"| {text} | {measured} | {against} | {'yes' if met else '-' if met is None else 'no'} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, figures: dict[str, Figure], facts: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [f for f in figures.values() if f.runs and f.unit not in {"s", "MB", "us"}]
    labels = [f.label for f in shown]
    medians = [f.median for f in shown]
    low = [f.median - min(f.runs) for f in shown]
    high = [max(f.runs) - f.median for f in shown]

    def colour(f: Figure) -> str:
        if f.key.startswith("raw"):
            return "#888888"
        if f.key.startswith("peer_"):
            return "#d08c3a"
        return "#2f6db5"

    fig, ax = plt.subplots(figsize=(10, 0.42 * len(shown) + 1.6))
    y = list(range(len(shown)))[::-1]
    ax.barh(y, medians, xerr=[low, high], color=[colour(f) for f in shown], capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("per second (log scale); bars: median, whiskers: min-max")
    ax.set_title(
        f"oxide vs raw redis-py vs peers - {facts['cores']} cores, Python {facts['python']}, Redis {facts['redis']}",
        fontsize=10,
    )
    for yi, value in zip(y, medians, strict=True):
        ax.text(value, yi, f" {value:,.0f}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out: Path, figures: dict[str, Figure], facts: dict[str, Any], settings: Settings, *, targets: bool
) -> None:
    (out / "results.md").write_text(table(figures, facts, settings, targets=targets))
    plot(out / "results.png", figures, facts)
