"""The CLI end to end (as a subprocess), its registration, and the JSON and HTML files it writes."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

import orjson
import pytest

from proxy.loadtest import LoadConfig, run_load
from proxy.loadtest import cli as loadtest_cli
from proxy.loadtest.console import latency_table, progress_line, throughput_table
from proxy.loadtest.report import build_html, nice_ticks
from proxy.loadtest.runner import LiveStats

from .loadtest_fixture import Fixture

REPO = Path(__file__).resolve().parents[2]


async def _run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy.loadtest",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_runs_end_to_end_and_writes_json_and_report(
    fixture_server: Fixture, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"prompt": "ttfb_ms=20 chunks=4 gap_ms=5 heartbeat=1"}\n'
        '{"prompt": "ttfb_ms=20 chunks=4 gap_ms=5 retry=1"}\n',
        encoding="utf-8",
    )
    json_path, html_path = tmp_path / "out.json", tmp_path / "out.html"
    code, out, err = await _run_cli(
        "--target",
        "sse",
        "--url",
        fixture_server.url,
        "--agent",
        "demo",
        "--prompts-file",
        str(prompts),
        "--concurrency",
        "2",
        "--requests",
        "6",
        "--warmup",
        "2",
        "--slo-ttft-ms",
        "500",
        "--json",
        str(json_path),
        "--report",
        str(html_path),
        "--fail-on-error",
    )
    assert code == 0, err
    assert "TTFT" in out and "ITL, all gaps" in out and "(E2E−TTFT)/(chunks−1)" in out and "goodput" in out
    data = orjson.loads(json_path.read_bytes())
    assert (data["total"], data["ok"], data["warmup"]) == (6, 6, 2)
    assert data["errors"] == {}
    assert data["config"]["target"] == "sse" and data["config"]["warmup_requests"] == 2
    assert data["ttft"]["count"] == 6 and data["ttft"]["p50"] >= 0.019
    assert set(data["ttft"]) >= {"p50", "p90", "p95", "p99", "max"}
    assert data["itl"]["count"] == 18 and data["itl_mean"]["count"] == 6
    assert data["goodput"] == 6 and data["slos"] == {"ttft": 0.5}
    assert data["retries"] == 3 and data["heartbeats"] == 3
    assert len(data["records"]) == 8
    rec = data["records"][-1]
    assert set(rec) >= {
        "intended_s",
        "sent_s",
        "ttft_s",
        "e2e_s",
        "gaps_s",
        "chunks",
        "output_tokens",
        "retries",
        "heartbeats",
        "status",
        "error",
    }
    assert len(rec["gaps_s"]) == 3 and rec["chunks"] == 4 and rec["status"] == 200
    page = html_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 5
    for title in (
        "TTFT histogram",
        "ITL histogram",
        "Latency over time",
        "Completed requests per second",
        "Chunks per second",
    ):
        assert title in page
    # Self-contained: nothing to fetch, nothing to run.
    assert "<script" not in page and not re.search(r'(src|href)="https?:', page)


async def test_cli_exit_code_reports_failures_only_when_asked(fixture_server: Fixture) -> None:
    common = ("--url", fixture_server.url, "--prompt", "status=500", "--requests", "2", "--quiet")
    code, out, _ = await _run_cli(*common)
    assert code == 0 and "http_500: 2" in out
    code, _, _ = await _run_cli(*common, "--fail-on-error")
    assert code == 1


def test_cli_rejects_an_unbounded_run_and_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert loadtest_cli.main(["--concurrency", "2"]) == 2
    assert "requests and/or duration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        loadtest_cli.main(["--requests", "1", "--warmup", "soon"])
    assert exc.value.code == 2 and "--warmup" in capsys.readouterr().err
    assert loadtest_cli.main(["--requests", "1", "--rate", "5", "--ramp-up", "2"]) == 2
    assert "ramp-up" in capsys.readouterr().err


def test_register_adds_the_loadtest_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="agent-proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    loadtest_cli.register(sub)
    args = parser.parse_args(
        [
            "loadtest",
            "--target",
            "openai",
            "--model",
            "mock?chunks=64",
            "--rate",
            "5",
            "--arrival",
            "poisson",
            "--seed",
            "3",
            "--duration",
            "2",
            "--warmup",
            "1.5s",
            "--slo-itl-ms",
            "50",
            "-H",
            "Authorization: Bearer x",
        ]
    )
    assert args.func is loadtest_cli.run_cli
    cfg = loadtest_cli.config_from_args(args)
    assert (cfg.target, cfg.agent, cfg.rate, cfg.arrival, cfg.seed) == (
        "openai",
        "mock?chunks=64",
        5.0,
        "poisson",
        3,
    )
    assert (cfg.duration_s, cfg.warmup_s, cfg.warmup_requests) == (2.0, 1.5, 0)
    assert cfg.slo_itl_s == pytest.approx(0.05)
    assert cfg.headers == {"Authorization": "Bearer x"}
    assert cfg.prompts == ["Hello"] and cfg.concurrency is None


async def test_report_and_tables_render_a_run_with_failures_and_no_data(fixture_server: Fixture) -> None:
    result = await run_load(LoadConfig(url=fixture_server.url, prompts=["status=502"], requests=3))
    page = build_html(result)
    assert "http_502" in page and "no data" in page and page.count("<svg") == 5
    assert latency_table(result).row_count == 5
    assert throughput_table(result).row_count >= 8
    line = progress_line(LiveStats(), 10).plain
    assert "done 0/10" in line and "TTFT p50 –" in line


def test_axis_ticks_are_round_numbers() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.0, 97.0) == [0.0, 20.0, 40.0, 60.0, 80.0]
    assert nice_ticks(3.0, 3.0) == [3.0]
