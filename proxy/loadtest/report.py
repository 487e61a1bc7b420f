"""A self-contained HTML report of a run: summary tables and inline-SVG plots, no scripts or assets."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from proxy.loadtest.record import RequestRecord
from proxy.loadtest.result import LoadResult
from proxy.loadtest.stats import bucket_counts, histogram, percentile

_W, _H = 640, 260
_ML, _MR, _MT, _MB = 64, 16, 28, 40
_MAX_POINTS = 4000
_HIST_BINS = 40
_TIME_BUCKETS = 60
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left} .plots{display:flex;flex-wrap:wrap;gap:12px}
svg{background:#fff;border:1px solid #ddd} .muted{color:#777;font-size:.9em}
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], about `n` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks: list[float] = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 10))
        k += 1
    return ticks


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


class _Plot:
    """Axes with linear scales; callers add marks in data coordinates."""

    def __init__(self, title: str, xlabel: str, ylabel: str, x: tuple[float, float], y: tuple[float, float]):
        self.x0, self.x1 = x if x[1] > x[0] else (x[0], x[0] + 1.0)
        self.y0, self.y1 = y if y[1] > y[0] else (y[0], y[0] + 1.0)
        self.parts: list[str] = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
            f'font-size="11" role="img" aria-label="{_esc(title)}">',
            f'<text x="{_W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
            f"{_esc(title)}</text>",
        ]
        for tx in nice_ticks(self.x0, self.x1):
            px = self.px(tx)
            self.parts.append(f'<line x1="{px:.1f}" y1="{_MT}" x2="{px:.1f}" y2="{_H - _MB}" stroke="#eee"/>')
            self.parts.append(
                f'<text x="{px:.1f}" y="{_H - _MB + 14}" text-anchor="middle">{_fmt(tx)}</text>'
            )
        for ty in nice_ticks(self.y0, self.y1):
            py = self.py(ty)
            self.parts.append(f'<line x1="{_ML}" y1="{py:.1f}" x2="{_W - _MR}" y2="{py:.1f}" stroke="#eee"/>')
            self.parts.append(f'<text x="{_ML - 4}" y="{py + 4:.1f}" text-anchor="end">{_fmt(ty)}</text>')
        self.parts += [
            f'<rect x="{_ML}" y="{_MT}" width="{_W - _ML - _MR}" height="{_H - _MT - _MB}" '
            'fill="none" stroke="#999"/>',
            f'<text x="{(_ML + _W - _MR) / 2}" y="{_H - 6}" text-anchor="middle">{_esc(xlabel)}</text>',
            f'<text x="14" y="{(_MT + _H - _MB) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(_MT + _H - _MB) / 2})">{_esc(ylabel)}</text>',
        ]
        self._legend = 0

    def px(self, x: float) -> float:
        return _ML + (x - self.x0) / (self.x1 - self.x0) * (_W - _ML - _MR)

    def py(self, y: float) -> float:
        return _H - _MB - (y - self.y0) / (self.y1 - self.y0) * (_H - _MT - _MB)

    def legend(self, label: str, color: str) -> None:
        y = _MT + 12 + 14 * self._legend
        self._legend += 1
        self.parts.append(f'<rect x="{_W - _MR - 150}" y="{y - 8}" width="10" height="10" fill="{color}"/>')
        self.parts.append(f'<text x="{_W - _MR - 136}" y="{y + 1}">{_esc(label)}</text>')

    def bars(self, edges: Sequence[float], counts: Sequence[int], color: str) -> None:
        for i, c in enumerate(counts):
            if c == 0:
                continue
            x, x2 = self.px(edges[i]), self.px(edges[i + 1])
            y = self.py(c)
            self.parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(x2 - x - 1, 1):.1f}" '
                f'height="{self.py(self.y0) - y:.1f}" fill="{color}"><title>{_fmt(edges[i])}–'
                f"{_fmt(edges[i + 1])}: {c}</title></rect>"
            )

    def line(self, xs: Sequence[float], ys: Sequence[float | None], color: str) -> None:
        segment: list[str] = []
        for x, y in zip(xs, ys, strict=True):
            if y is None:
                self._flush(segment, color)
                segment = []
                continue
            segment.append(f"{self.px(x):.1f},{self.py(y):.1f}")
        self._flush(segment, color)

    def _flush(self, points: list[str], color: str) -> None:
        if len(points) == 1:
            x, y = points[0].split(",")
            self.parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{color}"/>')
        elif points:
            self.parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(points)}"/>'
            )

    def dots(self, xs: Sequence[float], ys: Sequence[float], color: str, r: float = 1.6) -> None:
        self.parts.extend(
            f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="{r}" fill="{color}" fill-opacity="0.6"/>'
            for x, y in zip(xs, ys, strict=True)
        )

    def crosses(self, xs: Sequence[float], ys: Sequence[float], color: str) -> None:
        for x, y in zip(xs, ys, strict=True):
            px, py = self.px(x), self.py(y)
            self.parts.append(
                f'<path d="M{px - 3:.1f},{py - 3:.1f}L{px + 3:.1f},{py + 3:.1f}M{px - 3:.1f},{py + 3:.1f}'
                f'L{px + 3:.1f},{py - 3:.1f}" stroke="{color}" stroke-width="1.2"/>'
            )

    def note(self, text: str) -> None:
        self.parts.append(f'<text x="{_ML + 4}" y="{_MT + 12}" fill="#777">{_esc(text)}</text>')

    def svg(self) -> str:
        return "\n".join([*self.parts, "</svg>"])


def _empty(title: str) -> str:
    p = _Plot(title, "", "", (0.0, 1.0), (0.0, 1.0))
    p.note("no data")
    return p.svg()


def histogram_svg(values_s: Sequence[float], title: str) -> str:
    """Histogram in milliseconds over [min, p99.5]; what lies above is counted in a note."""
    if not values_s:
        return _empty(title)
    ms = sorted(v * 1000.0 for v in values_s)
    lo, hi = ms[0], percentile(ms, 99.5)
    if hi <= lo:
        hi = lo + max(abs(lo) * 0.1, 1e-3)
    counts, over = histogram(ms, _HIST_BINS, lo, hi)
    edges = [lo + (hi - lo) * i / _HIST_BINS for i in range(_HIST_BINS + 1)]
    p = _Plot(title, "milliseconds", "count", (lo, hi), (0.0, max(counts) * 1.1))
    p.bars(edges, counts, _COLORS[0])
    for q, color in ((50.0, _COLORS[2]), (99.0, _COLORS[3])):
        v = percentile(ms, q)
        if v <= hi:
            x = p.px(v)
            p.parts.append(
                f'<line x1="{x:.1f}" y1="{_MT}" x2="{x:.1f}" y2="{_H - _MB}" stroke="{color}" '
                f'stroke-dasharray="4 3"/>'
            )
            p.legend(f"p{q:g} = {v:.2f} ms", color)
    if over:
        p.note(f"{over} above {hi:.1f} ms (p99.5) not drawn")
    return p.svg()


def _thin(items: Sequence[RequestRecord], limit: int) -> Sequence[RequestRecord]:
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def latency_over_time_svg(records: Sequence[RequestRecord]) -> str:
    """TTFT and E2E of every request (thinned to a few thousand) against its intended send time;
    failed requests as red crosses at the time they failed."""
    title = "Latency over time (by intended send time)"
    ok = [r for r in records if r.ok and r.e2e_s is not None]
    bad = [r for r in records if not r.ok and r.e2e_s is not None]
    if not ok and not bad:
        return _empty(title)
    ys = [v for r in ok for v in (r.ttft_s, r.e2e_s) if v is not None] + [r.e2e_s or 0.0 for r in bad]
    xs = [r.intended for r in (*ok, *bad)]
    p = _Plot(title, "seconds since start", "seconds", (min(xs), max(xs)), (0.0, max(ys) * 1.05))
    measured = [r.intended for r in records if not r.warmup]
    warm = [r.intended for r in records if r.warmup]
    if warm:
        end = min(measured) if measured else max(warm)
        x0, x1 = p.px(p.x0), p.px(end)
        p.parts.append(
            f'<rect x="{x0:.1f}" y="{_MT}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{_H - _MT - _MB}" fill="#000" fill-opacity="0.06">'
            "<title>warm-up (excluded)</title></rect>"
        )
        p.legend("warm-up (shaded)", "#ddd")
    shown = _thin(ok, _MAX_POINTS)
    p.dots([r.intended for r in shown], [r.e2e_s or 0.0 for r in shown], _COLORS[0])
    with_ttft = [r for r in shown if r.ttft_s is not None]
    p.dots([r.intended for r in with_ttft], [r.ttft_s or 0.0 for r in with_ttft], _COLORS[1])
    bad_shown = _thin(bad, _MAX_POINTS // 4)
    p.crosses([r.intended for r in bad_shown], [r.e2e_s or 0.0 for r in bad_shown], _COLORS[3])
    p.legend("E2E", _COLORS[0])
    p.legend("TTFT", _COLORS[1])
    if bad:
        p.legend(f"failed ({len(bad)})", _COLORS[3])
    if len(shown) < len(ok):
        p.note(f"{len(shown)} of {len(ok)} requests drawn")
    return p.svg()


def _chunk_times(rec: RequestRecord) -> Iterator[float]:
    t = rec.first_content
    if t is None:
        return
    yield t
    for gap in rec.gaps:
        t += gap
        yield t


def throughput_svgs(records: Sequence[RequestRecord], wall_s: float) -> tuple[str, str]:
    """Completed requests/s (ok and failed) and received chunks/s, per time bucket."""
    width = max(wall_s / _TIME_BUCKETS, 0.05)
    n = max(1, math.ceil(wall_s / width))
    centers = [(i + 0.5) * width for i in range(n)]
    ok_ends = bucket_counts((r.ended for r in records if r.ok and r.ended is not None), 0.0, width, n)
    bad_ends = bucket_counts((r.ended for r in records if not r.ok and r.ended is not None), 0.0, width, n)
    chunks = bucket_counts((t for r in records for t in _chunk_times(r)), 0.0, width, n)
    ok_rate = [c / width for c in ok_ends]
    bad_rate = [c / width for c in bad_ends]
    p = _Plot(
        "Completed requests per second",
        "seconds since start",
        "requests/s",
        (0.0, n * width),
        (0.0, max([*ok_rate, *bad_rate, 1.0]) * 1.1),
    )
    p.line(centers, list(ok_rate), _COLORS[0])
    p.legend("ok", _COLORS[0])
    if any(bad_rate):
        p.line(centers, list(bad_rate), _COLORS[3])
        p.legend("failed", _COLORS[3])
    req_svg = p.svg()

    chunk_rate = [c / width for c in chunks]
    q = _Plot(
        f"Chunks per second ({width:.2g} s buckets)",
        "seconds since start",
        "chunks/s",
        (0.0, n * width),
        (0.0, max([*chunk_rate, 1.0]) * 1.1),
    )
    q.line(centers, chunk_rate, _COLORS[2])
    return req_svg, q.svg()


def _dist_rows(result: LoadResult) -> str:
    rows = [
        ("TTFT", result.ttft),
        ("ITL, every gap", result.itl),
        ("ITL mean per request", result.itl_mean),
        ("E2E", result.e2e),
        ("send lag", result.send_lag),
    ]
    cols = ("p50", "p90", "p95", "p99", "max", "mean")
    head = "<tr><th>ms</th><th>n</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    body = []
    for name, dist in rows:
        cells = "".join(f"<td>{dist[c] * 1000:.2f}</td>" if c in dist else "<td>–</td>" for c in cols)
        body.append(f"<tr><td>{_esc(name)}</td><td>{int(dist.get('count', 0))}</td>{cells}</tr>")
    return "<table>" + head + "".join(body) + "</table>"


def _kv_table(items: Sequence[tuple[str, object]]) -> str:
    rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


def build_html(result: LoadResult) -> str:
    cfg = result.config
    measured = result.measured
    shape = (
        f"open loop, {cfg.rate:g}/s {cfg.arrival}"
        if cfg.rate is not None
        else (f"closed loop, concurrency {cfg.concurrency or 1}")
    )
    summary: list[tuple[str, object]] = [
        ("target", f"{cfg.target}  {cfg.url}  ({cfg.agent})"),
        ("load", shape),
        ("requests ok / measured / warm-up", f"{result.ok} / {result.total} / {result.warmup}"),
        ("measured window, wall", f"{result.window_s:.3f} s, {result.wall_s:.3f} s"),
        ("requests/s (all / ok)", f"{result.requests_per_s:.2f} / {result.ok_per_s:.2f}"),
        ("chunks/s", f"{result.chunks_per_s:.1f}  ({result.chunks} chunks)"),
        ("tokens/s (from usage)", f"{result.tokens_per_s:.1f}  ({result.tokens} output tokens)"),
        ("retries / heartbeats seen", f"{result.retries} / {result.heartbeats}"),
    ]
    if result.goodput is not None and result.goodput_per_s is not None:
        slos = ", ".join(f"{k} ≤ {v * 1000:g} ms" for k, v in cfg.slos.items())
        summary.append((f"goodput ({slos})", f"{result.goodput_per_s:.2f}/s ({result.goodput} requests)"))
    if result.hard_stopped:
        summary.append(("stopped", "by the overall time limit"))
    lag = result.tool_loop_lag
    tool = f"CPU {result.tool_cpu_pct:.0f}% of a core"
    if "p99" in lag:
        tool += f", loop lag p99 {lag['p99'] * 1000:.1f} ms, max {lag['max'] * 1000:.1f} ms"
    if result.tool_saturated:
        tool += " (busy: latencies may include its own delay)"
    summary.append(("load generator", tool))
    errors = _kv_table(list(result.errors.items())) if result.errors else "<p>none</p>"
    req_svg, chunk_svg = throughput_svgs(result.records, result.wall_s)
    gaps = [g for r in measured if r.ok for g in r.gaps]
    ttfts = [v for r in measured if r.ok and (v := r.ttft_s) is not None]
    defs = result.summary_dict()["definitions"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>agent-proxy loadtest: {_esc(cfg.target)} {_esc(cfg.url)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>agent-proxy loadtest — {_esc(cfg.target)} {_esc(cfg.url)}</h1>",
            f'<p class="muted">{stamp}. Statistics cover measured (non-warm-up) requests; latencies '
            "only the successful ones. Latency is measured from the intended send time.</p>",
            "<h2>Summary</h2>",
            _kv_table(summary),
            "<h2>Latency</h2>",
            _dist_rows(result),
            "<h2>Errors by kind</h2>",
            errors,
            "<h2>Plots</h2>",
            '<div class="plots">',
            histogram_svg(ttfts, "TTFT histogram"),
            histogram_svg(gaps, "ITL histogram (every inter-chunk gap)"),
            latency_over_time_svg(result.records),
            req_svg,
            chunk_svg,
            "</div>",
            "<h2>Definitions</h2>",
            _kv_table(list(defs.items())),
            "<h2>Configuration</h2>",
            _kv_table(sorted(cfg.to_dict().items())),
            "</body></html>",
        ]
    )


def write_report(result: LoadResult, path: str | Path) -> None:
    Path(path).write_text(build_html(result), encoding="utf-8")
