"""OTLP/HTTP export configured by environment variables only, in a fresh process each time."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .conftest import ROOT


class FakeCollector:
    """An OTLP/HTTP traces receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.requests.append(message)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        out: list[tuple[dict[str, Any], Any]] = []
        for req in self.requests:
            for rs in req.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    out.extend((resource, span) for span in ss.spans)
        return out


@asynccontextmanager
async def running_collector() -> AsyncIterator[FakeCollector]:
    """A `FakeCollector` listening on a free port of 127.0.0.1."""
    fake = FakeCollector()
    app = web.Application()
    app.router.add_post("/v1/traces", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with running_collector() as fake:
        yield fake


async def run_child(*args: str, env: dict[str, str]) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_MULTIPROC"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.observability.children", *args, cwd=ROOT, env={**base, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
async def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set(
    collector: FakeCollector, variable: str
) -> None:
    url = collector.url + ("/v1/traces" if variable.endswith("TRACES_ENDPOINT") else "")
    result = await run_child("otlp", "{}", env={variable: url, "OTEL_SERVICE_NAME": "proxy-under-test"})

    assert result["instrumented"]
    spans = collector.spans()
    names = {span.name for _, span in spans}
    assert {
        "agent_proxy.stream",
        "agent_proxy.attempt",
        "invoke_agent otlp",
        "chat function::stream_fn",
    } <= names
    assert {resource["service.name"] for resource, _ in spans} == {"proxy-under-test"}
    assert {span.trace_id.hex() for _, span in spans} == {result["trace_id"]}


async def test_service_name_defaults_to_agent_proxy(collector: FakeCollector) -> None:
    await run_child("otlp", "{}", env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
    assert {resource["service.name"] for resource, _ in collector.spans()} == {"agent-proxy"}


async def test_without_an_endpoint_nothing_is_traced_or_exported() -> None:
    result = await run_child("otlp", "{}", env={})
    assert result == {"instrumented": False, "trace_id": None, "processors": None}


async def test_tracing_on_without_an_endpoint_records_but_exports_nothing() -> None:
    result = await run_child("otlp", json.dumps({"tracing": "on"}), env={})
    assert result["instrumented"]
    assert len(result["trace_id"]) == 32
    assert result["processors"] == 0


async def test_tracing_off_wins_over_an_endpoint(collector: FakeCollector) -> None:
    result = await run_child(
        "otlp", json.dumps({"tracing": "off"}), env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    )
    assert not result["instrumented"]
    assert collector.requests == []
