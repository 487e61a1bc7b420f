"""Pure parts of the load generator: stats, SSE parsing, arrival schedules, config, prompts."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest

from proxy.loadtest.config import LoadConfig, load_prompts
from proxy.loadtest.record import RequestRecord
from proxy.loadtest.result import build_result, meets_slos
from proxy.loadtest.schedule import arrival_offsets
from proxy.loadtest.sse_parser import COMMENT, SseParser
from proxy.loadtest.stats import bucket_counts, histogram, mean_itl, percentile, summarize


def test_percentile_interpolates_like_numpy_linear() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 4.0
    assert percentile(data, 50) == pytest.approx(2.5)
    assert percentile(data, 90) == pytest.approx(3.7)
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


def test_summarize_reports_the_standard_percentiles_and_handles_no_data() -> None:
    s = summarize(float(i) for i in range(1, 101))
    assert s["count"] == 100
    assert s["min"] == 1.0 and s["max"] == 100.0
    assert s["mean"] == pytest.approx(50.5)
    assert s["p50"] == pytest.approx(50.5)
    assert s["p99"] == pytest.approx(99.01)
    assert set(s) == {"count", "min", "mean", "p50", "p90", "p95", "p99", "max"}
    assert summarize([]) == {"count": 0}


def test_mean_itl_is_e2e_minus_ttft_over_chunks_minus_one() -> None:
    assert mean_itl(e2e_s=1.0, ttft_s=0.2, chunks=5) == pytest.approx(0.2)
    assert mean_itl(e2e_s=1.0, ttft_s=0.2, chunks=1) is None


def test_histogram_and_buckets_count_edges_and_overflow() -> None:
    counts, over = histogram([0.0, 0.5, 1.0, 1.5, 9.0], bins=2, lo=0.0, hi=2.0)
    assert counts == [2, 2] and over == 1
    assert bucket_counts([-1.0, 0.0, 0.9, 1.0, 5.0], start=0.0, width=1.0, n_buckets=2) == [2, 2]


def test_sse_parser_reassembles_events_split_at_any_byte() -> None:
    stream = (
        b'id: 0\nevent: start\ndata: {"a": 1}\n\n'
        b": keepalive\n\n"
        b'event: delta\r\ndata: {"text": "x"}\r\n\r\n'
        b"data: line1\ndata: line2\n\n"
        b"data: [DONE]\n\n"
    )
    expected = [
        ("start", b'{"a": 1}'),
        (COMMENT, b""),
        ("delta", b'{"text": "x"}'),
        ("", b"line1\nline2"),
        ("", b"[DONE]"),
    ]
    for size in (1, 2, 3, 7, len(stream)):
        parser = SseParser()
        got: list[tuple[str, bytes]] = []
        for i in range(0, len(stream), size):
            got += parser.feed(stream[i : i + size])
        assert got == expected, size
        assert parser.pending == b""


def test_constant_arrivals_are_evenly_spaced() -> None:
    offsets = list(itertools.islice(arrival_offsets(4.0, "constant"), 5))
    assert offsets == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_poisson_arrivals_are_reproducible_with_a_seed_and_have_the_right_mean() -> None:
    a = list(itertools.islice(arrival_offsets(50.0, "poisson", seed=7), 2000))
    b = list(itertools.islice(arrival_offsets(50.0, "poisson", seed=7), 2000))
    c = list(itertools.islice(arrival_offsets(50.0, "poisson", seed=8), 2000))
    assert a == b
    assert a != c
    assert a[0] == 0.0
    gaps = [y - x for x, y in itertools.pairwise(a)]
    assert all(g >= 0 for g in gaps)
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 50.0, rel=0.1)
    # The schedule has its own generator: the global one neither feeds it nor is consumed by it.
    random.seed(1)
    before = random.random()
    random.seed(1)
    list(itertools.islice(arrival_offsets(5.0, "poisson", seed=3), 10))
    assert random.random() == before


def test_config_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="requests and/or duration"):
        LoadConfig().validate()
    with pytest.raises(ValueError, match="not both"):
        LoadConfig(requests=1, concurrency=2, rate=1.0).validate()
    with pytest.raises(ValueError, match="target"):
        LoadConfig(requests=1, target="grpc").validate()  # type: ignore[arg-type]
    LoadConfig(requests=1).validate()


def test_hard_time_limit_is_derived_from_the_bounds() -> None:
    assert LoadConfig(duration_s=10, timeout_s=5, warmup_s=2).effective_max_time_s() == 2 + 10 + 5 + 10
    assert LoadConfig(requests=10).effective_max_time_s() == 3600
    assert LoadConfig(requests=10, max_time_s=7).effective_max_time_s() == 7


def test_prompts_file_takes_plain_lines_and_jsonl(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text('first prompt\n\n{"prompt": "from json", "id": 3}\n{not json at all\n', encoding="utf-8")
    assert load_prompts(f) == ["first prompt", "from json", "{not json at all"]
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no prompts"):
        load_prompts(tmp_path / "empty.txt")


def _rec(
    index: int, *, ttft: float, e2e: float, chunks: int, warmup: bool = False, error: str | None = None
) -> RequestRecord:
    r = RequestRecord(index=index, warmup=warmup, intended=float(index), sent=float(index))
    if chunks:
        r.first_content = index + ttft
        r.last_content = index + e2e
        r.chunks = chunks
        r.gaps = [(e2e - ttft) / (chunks - 1)] * (chunks - 1) if chunks > 1 else []
    r.ended = index + e2e
    r.error = error
    r.output_tokens = chunks
    return r


def test_result_excludes_warmup_and_failures_from_latency_and_counts_goodput() -> None:
    records = [
        _rec(0, ttft=5.0, e2e=9.0, chunks=3, warmup=True),
        _rec(1, ttft=0.1, e2e=0.5, chunks=5),
        _rec(2, ttft=0.3, e2e=0.7, chunks=5),
        _rec(3, ttft=0.2, e2e=0.2, chunks=0, error="http_500"),
    ]
    cfg = LoadConfig(requests=3, slo_ttft_s=0.2)
    result = build_result(cfg, records, wall_s=10.0)
    assert (result.total, result.ok, result.warmup) == (3, 2, 1)
    assert result.errors == {"http_500": 1}
    assert result.ttft["max"] == pytest.approx(0.3)
    assert result.itl["count"] == 8
    assert result.itl_mean["p50"] == pytest.approx(0.1)
    assert result.window_s == pytest.approx(3.2 - 1.0)
    assert result.requests_per_s == pytest.approx(3 / 2.2)
    assert result.chunks == 10 and result.tokens == 10
    assert result.goodput == 1
    assert result.goodput_per_s == pytest.approx(1 / 2.2)
    assert meets_slos(records[1], {"ttft": 0.2, "itl": 0.1, "e2e": 0.5})
    assert not meets_slos(records[1], {"itl": 0.05})
    assert not meets_slos(records[3], {})
    assert math.isfinite(build_result(cfg, [], wall_s=0.0).requests_per_s)
