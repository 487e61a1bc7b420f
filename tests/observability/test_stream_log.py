"""The stream log: one structured line per finished stream, no prompt text, trace id included."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

import pytest

from proxy.observability.observer import Observers
from proxy.observability.stream_log import STREAM_LOGGER, JsonFormatter, LogObserver, configure_logging
from proxy.observability.tracing import TracingObserver

from .conftest import Script, Traced, drive


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger(STREAM_LOGGER)
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


async def test_one_json_line_per_stream_with_the_fields_an_operator_needs(
    lines: Lines, traced: Traced
) -> None:
    observer = Observers([TracingObserver(traced.provider), LogObserver()])
    s = Script("s-42").start("mock:slow").attempt("mock:slow")
    s.finish_attempt("mock:slow", "error", "http_503", "http_503").retry("http_503")
    s.fallback("mock:slow", "mock:fast").attempt("mock:fast").deltas("a", "b").finish_attempt("mock:fast")
    driven = await drive(observer, s.end("stop", 11, 22), transport="openai", arrived_ago=0.1)

    events = [json.loads(x)["event"] for x in lines.lines]
    assert events == ["stream_retry", "stream_fallback", "stream_finished"]
    line = json.loads(lines.lines[-1])
    assert line["message"] == "stream finished"
    assert line["logger"] == "agent_proxy.stream"
    assert line["level"] == "INFO"
    expected = {
        "event": "stream_finished", "stream_id": "s-42", "agent": "demo", "model": "mock:fast",
        "transport": "openai", "outcome": "stop", "attempts": 2, "retries": 1, "fallbacks": 1,
        "error_code": None, "input_tokens": 11, "output_tokens": 22, "trace_id": driven.ctx.trace_id,
    }  # fmt: skip
    assert {k: line[k] for k in expected} == expected
    assert 0.1 <= line["ttft_s"] <= line["duration_s"] < 1.0
    assert len(line["trace_id"]) == 32


async def test_each_retry_and_fallback_gets_its_own_line_as_it_happens(lines: Lines) -> None:
    observer = Observers([LogObserver()])
    s = Script("s-7").start("mock:slow").attempt("mock:slow")
    s.finish_attempt("mock:slow", "error", "http_503", "http_503").retry("http_503")
    s.fallback("mock:slow", "mock:fast", "http_503").retry("http_503", discard=True)
    s.attempt("mock:fast").deltas("ok").finish_attempt("mock:fast")
    await drive(observer, s.end("stop"), transport="sse")

    retry, fallback, retry_after_fallback, finished = (json.loads(x) for x in lines.lines)
    shown = ("message", "event", "stream_id", "agent", "model", "reason", "transport")
    assert {k: retry[k] for k in shown} == {
        "message": "stream retry", "event": "stream_retry", "stream_id": "s-7", "agent": "demo",
        "model": "mock:slow", "reason": "http_503", "transport": "sse",
    }  # fmt: skip
    assert (retry["attempt"], retry["max_attempts"], retry["discard"]) == (1, 3, False)
    assert {k: fallback[k] for k in ("event", "from_model", "model", "reason")} == {
        "event": "stream_fallback", "from_model": "mock:slow", "model": "mock:fast", "reason": "http_503",
    }  # fmt: skip
    assert retry_after_fallback["model"] == "mock:slow"  # the model that failed, not the next one
    assert retry_after_fallback["discard"] is True
    assert finished["event"] == "stream_finished" and finished["retries"] == 2


async def test_failed_and_abandoned_streams_are_logged_without_their_text(lines: Lines) -> None:
    observer = Observers([LogObserver()])
    s = Script("s-1").start().attempt().deltas("COMPLETION-SECRET").finish_attempt(outcome="error")
    await drive(observer, s.error("upstream_bad_request", "rejected: PROMPT-SECRET sk-live-KEY").end("error"))
    await drive(observer, Script("s-2").ok(texts=("COMPLETION-SECRET", "more")), gone_after=2)

    first, second = (json.loads(x) for x in lines.lines)
    assert first["outcome"] == "error"
    assert first["error_code"] == "upstream_bad_request"
    assert second["outcome"] == "client_disconnect"
    assert second["input_tokens"] is None
    assert second["trace_id"] is None  # no tracing observer: no trace id
    for raw in lines.lines:
        assert "SECRET" not in raw
        assert "sk-live" not in raw


async def test_no_line_when_the_stream_logger_is_silenced(lines: Lines) -> None:
    logging.getLogger(STREAM_LOGGER).setLevel(logging.WARNING)
    await drive(Observers([LogObserver()]), Script().ok())
    assert lines.lines == []


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_logging_installs_one_handler(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO", fmt)  # type: ignore[arg-type]
        configure_logging("INFO", fmt)  # type: ignore[arg-type]
        ours = [h for h in root.handlers if getattr(h, "_agent_proxy", False)]
        assert len(ours) == 1
        logging.getLogger("agent_proxy.test").info(
            "hello", extra={"fields": {"agent": "demo", "attempts": 2}}
        )
        err = capsys.readouterr().err.strip().splitlines()[-1]
        if fmt == "json":
            assert json.loads(err) | {"ts": 0} == {
                "ts": 0, "level": "INFO", "logger": "agent_proxy.test", "pid": os.getpid(),
                "message": "hello", "agent": "demo", "attempts": 2,
            }  # fmt: skip
        else:
            assert err.endswith("INFO agent_proxy.test: hello agent=demo attempts=2")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
