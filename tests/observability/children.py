"""Entry points for the observability tests that need a fresh process (global TracerProvider,
prometheus-client's multiprocess mode). Run as `python -m tests.observability.children MODE ...`;
each prints one JSON object on its last stdout line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from proxy.observability.observer import StreamContext

from .conftest import AGENTS, MODELS, Script, drive


async def _otlp(settings_json: str) -> dict[str, Any]:
    """Build the app's telemetry from settings + environment only, stream once, shut down."""
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from proxy.observability import ObservabilitySettings
    from proxy.observability import runtime as runtime
    from proxy.observability.runtime import build_observer, instrumentation_settings, shutdown

    observer = build_observer(ObservabilitySettings.model_validate_json(settings_json), AGENTS, MODELS)
    settings = instrumentation_settings()
    processors = None
    tracing = runtime.current().tracing
    if tracing is not None:
        processors = len(tracing.provider._active_span_processor._span_processors)

    async def stream_fn(messages: list[ModelMessage], info: AgentInfo) -> Any:
        yield "hello"

    capabilities = [Instrumentation(settings=settings)] if settings is not None else []
    agent: Agent[None, str] = Agent(
        FunctionModel(stream_function=stream_fn), name="otlp", capabilities=capabilities
    )

    async def engine() -> Any:
        s = Script("s-otlp").start().attempt()
        for e in s.steps:
            yield e
        async with agent.run_stream_events("hi") as run:
            async for _ in run:
                pass
        s.steps.clear()
        for e in s.deltas("hello").finish_attempt().end().steps:
            yield e

    driven = await drive(observer, engine(), stream_id="s-otlp")
    shutdown()
    return {
        "instrumented": settings is not None,
        "trace_id": driven.ctx.trace_id,
        "processors": processors,
    }


async def _worker(streams: int, leak: bool) -> dict[str, Any]:
    """A worker of a multi-process server: `streams` finished streams (+1 left open if `leak`)."""
    from proxy.observability import ObservabilitySettings, build_observer, shutdown

    observer = build_observer(ObservabilitySettings(tracing="on", stream_log=False), AGENTS, MODELS)
    trace_ids = []
    for i in range(streams):
        driven = await drive(observer, Script(f"s-{os.getpid()}-{i}").ok(), transport="sse")
        trace_ids.append(driven.ctx.trace_id)
    if leak:
        observer.stream_started(StreamContext(stream_id="open", agent="demo", transport="sse"))
    shutdown()
    return {"pid": os.getpid(), "trace_ids": trace_ids}


def _collect() -> dict[str, Any]:
    """What `GET /metrics` answers in any worker: all workers' numbers merged."""
    from proxy.observability import ObservabilitySettings, build_observer, render_metrics

    build_observer(ObservabilitySettings(stream_log=False), AGENTS, MODELS)
    plain, plain_type = render_metrics(None)
    om, om_type = render_metrics("application/openmetrics-text; version=1.0.0")
    return {"plain": plain.decode(), "plain_type": plain_type, "openmetrics": om.decode(), "om_type": om_type}


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "otlp":
        result = asyncio.run(_otlp(argv[1]))
    elif mode == "worker":
        result = asyncio.run(_worker(int(argv[1]), argv[2] == "leak"))
    elif mode == "collect":
        result = _collect()
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
