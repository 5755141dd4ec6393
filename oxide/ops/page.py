"""The dashboard's HTML: queues, workers, the last hour as an inline SVG plot, failed jobs. Every value is escaped."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from . import Minute, QueueStats, WorkerRecord

__all__ = ["State", "plot_svg", "render_page"]

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 .2rem} h2{font-size:1.05rem;margin:1.5rem 0 .4rem}
table{border-collapse:collapse;background:#fff} td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{background:#f0f0f0} td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777} .said{background:#e8f4e8;border:1px solid #9c9;padding:.4rem .8rem;display:inline-block}
.alert{color:#a00;font-weight:600} form{display:inline} button{font:inherit;cursor:pointer}
svg{background:#fff;border:1px solid #ddd}
"""

CONFIRM_SCRIPT = """
for (const form of document.querySelectorAll('form[data-confirm]')) {
  form.addEventListener('submit', (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
"""


@dataclass
class State:
    """Everything one page shows."""

    connections: Sequence[tuple[str, str, str]]  # name, driver, redacted URL
    queues: Sequence[QueueStats]
    workers: Sequence[WorkerRecord]
    minutes: Sequence[Minute]
    failed: Sequence[Any]  # StoredFailedJob
    failed_stored: bool
    problems: Sequence[str]
    now: float


def _age(secs: float | None) -> str:
    if secs is None:
        return "-"
    return f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min"


def plot_svg(minutes: Sequence[Minute], now: float, width: int = 720, height: int = 180) -> str:
    """Runs per minute (bars: done, failed stacked) and mean run time (line), over the last 60 minutes."""
    last = int(now // 60)
    per: dict[int, list[float]] = {}
    for m in minutes:
        if not last - 60 < m.minute <= last:
            continue  # outside the hour shown: it must not set the scale either
        slot = per.setdefault(m.minute, [0, 0, 0.0, 0])
        slot[0] += m.done + m.retried
        slot[1] += m.failed
        slot[2] += m.seconds
        slot[3] += m.done + m.failed + m.retried
    top = max([1.0, *(v[0] + v[1] for v in per.values())])
    slowest = max([0.001, *(v[2] / v[3] for v in per.values() if v[3])])
    left, bottom, plot_h = 48, height - 24, height - 40
    step = (width - left - 48) / 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="jobs per minute and mean run time, last hour">',
        f'<text x="4" y="14" font-size="11" fill="#2a7">runs/min (max {top:.0f})</text>',
        f'<text x="{width - 4}" y="14" font-size="11" fill="#36c" text-anchor="end">mean run time (max {slowest:.3g} s)</text>',
        f'<line x1="{left}" y1="{bottom}" x2="{width - 48}" y2="{bottom}" stroke="#999"/>',
        f'<text x="{left}" y="{height - 6}" font-size="11" fill="#777">-60 min</text>',
        f'<text x="{width - 48}" y="{height - 6}" font-size="11" fill="#777" text-anchor="end">now</text>',
    ]
    points = []
    for i in range(60):
        minute = last - 59 + i
        done, failed, secs, runs = per.get(minute, [0, 0, 0.0, 0])
        x = left + i * step
        h_done, h_failed = plot_h * done / top, plot_h * failed / top
        if done:
            parts.append(
                f'<rect class="done" x="{x:.1f}" y="{bottom - h_done:.1f}" width="{step * 0.8:.1f}" '
                f'height="{h_done:.1f}" fill="#2a7"><title>{done:.0f} ok</title></rect>'
            )
        if failed:
            parts.append(
                f'<rect class="failed" x="{x:.1f}" y="{bottom - h_done - h_failed:.1f}" width="{step * 0.8:.1f}" '
                f'height="{h_failed:.1f}" fill="#c33"><title>{failed:.0f} failed</title></rect>'
            )
        if runs:
            points.append(f"{x + step * 0.4:.1f},{bottom - plot_h * (secs / runs) / slowest:.1f}")
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#36c" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _button(base: str, action: str, label: str, question: str, csrf: str) -> str:
    return (
        f'<form method="post" action="{escape(base)}{escape(action)}" data-confirm="{escape(question)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}"><button type="submit">{escape(label)}</button></form>'
    )


def render_page(state: State, *, base: str, csrf: str | None, nonce: str, said: str = "") -> str:
    """The whole page; ``csrf`` None: read-only (no buttons)."""
    e = escape
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>oxide queue</title>",
        f'<meta name="viewport" content="width=device-width"><style nonce="{e(nonce)}">{STYLE}</style>',
        "" if csrf is None else f'<meta name="csrf-token" content="{e(csrf)}">',
        "</head><body>",
        "<h1>oxide queue</h1>",
        '<p class="muted">'
        + "; ".join(f"{e(n)} ({e(d)}, {e(u)})" for n, d, u in state.connections)
        + f" &middot; {e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(state.now)))}"
        + (" &middot; read-only" if csrf is None else "")
        + "</p>",
    ]
    if said:
        out.append(f'<p class="said" id="said">{e(said)}</p>')
    out += [f'<p class="alert">{e(p)}</p>' for p in state.problems]
    out.append(
        '<h2>Queues</h2><table id="queues"><tr><th>connection</th><th>queue</th><th>ready</th>'
        "<th>reserved</th><th>delayed</th><th>failed</th><th>oldest waiting</th><th>paused</th></tr>"
    )
    for s in state.queues:
        paused = (
            "-"
            if s.paused is None
            else (
                "yes"
                if s.paused.until_ms is None
                else "until " + time.strftime("%H:%M:%S UTC", time.gmtime(s.paused.until_ms / 1000))
            )
        )
        out.append(
            f'<tr data-queue="{e(s.queue)}"><td>{e(s.connection)}</td><td>{e(s.queue)}</td>'
            f'<td class="n ready">{s.ready}</td><td class="n reserved">{s.reserved}</td>'
            f'<td class="n delayed">{s.delayed}</td><td class="n failed">{"-" if s.failed is None else s.failed}</td>'
            f'<td class="n">{e(_age(s.oldest_age_secs))}</td><td class="paused">{e(paused)}</td></tr>'
        )
    out.append("</table>")
    out.append(f'<h2>Workers <span class="muted" id="worker-count">({len(state.workers)} live)</span></h2>')
    if state.workers:
        out.append(
            '<table id="workers"><tr><th>host</th><th>pid</th><th>connection</th><th>queues</th><th>up</th>'
            "<th>done</th><th>failed</th><th>running</th></tr>"
        )
        for w in state.workers:
            running = ", ".join(
                f"{j.get('listener') or j.get('event')} on {j.get('queue')} for {_age(state.now - float(j['since']))}"
                for j in w.jobs
            )
            out.append(
                f"<tr><td>{e(w.host)}</td><td class=n>{w.pid}</td><td>{e(w.connection)}</td><td>{e(','.join(w.queues))}</td>"
                f"<td>{e(_age(state.now - w.started_at))}</td><td class=n>{w.done}</td><td class=n>{w.failed}</td>"
                f"<td>{e(running) or 'idle'}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append('<p class="muted">No live workers.</p>')
    out.append("<h2>Last hour</h2>" + plot_svg(state.minutes, state.now))
    out.append(f'<h2>Failed jobs <span class="muted" id="failed-count">({len(state.failed)})</span></h2>')
    if not state.failed_stored:
        out.append('<p class="muted">Failed jobs are not stored ([failed] driver = "none").</p>')
    elif not state.failed:
        out.append('<p class="muted">No failed jobs.</p>')
    else:
        out.append(
            '<table id="failed"><tr><th>id</th><th>connection</th><th>queue</th><th>event</th>'
            "<th>failed at</th><th>error</th><th></th></tr>"
        )
        for row in state.failed:
            error = (row.exception.strip().splitlines() or [""])[-1][:160]
            buttons = ""
            if csrf is not None:
                buttons = (
                    _button(base, f"/failed/{row.id}/retry", "retry", f"Retry failed job {row.id}?", csrf)
                    + " "
                    + _button(base, f"/failed/{row.id}/forget", "forget", f"Delete failed job {row.id} for good?", csrf)
                )
            out.append(
                f'<tr data-id="{row.id}"><td class=n>{row.id}</td><td>{e(row.connection)}</td><td>{e(row.queue)}</td>'
                f"<td>{e(row.event_name or '(undecodable message)')}</td>"
                f"<td>{e(row.failed_at.strftime('%Y-%m-%d %H:%M:%S UTC'))}</td><td>{e(error)}</td><td>{buttons}</td></tr>"
            )
        out.append("</table>")
        if csrf is not None:
            out.append(
                "<p>"
                + _button(base, "/failed/flush", "flush all", f"Delete all {len(state.failed)} failed jobs?", csrf)
                + "</p>"
            )
    out.append(f'<script nonce="{e(nonce)}">{CONFIRM_SCRIPT}</script></body></html>')
    return "".join(out)


def state_json(state: State) -> Mapping[str, Any]:
    """The page's figures for scripts (``GET /state.json``)."""
    return {
        "queues": [s.to_dict() for s in state.queues],
        "workers": [w.to_dict() for w in state.workers],
        "failed": [
            {"id": r.id, "connection": r.connection, "queue": r.queue, "event": r.event_name} for r in state.failed
        ],
        "problems": list(state.problems),
    }
