"""The playground in a real browser (Debian's chromium driven by playwright), against the built-in demo.

Each test clicks through the page as a person would and asserts what they see: the answer, the
timeline's entries, the struck-through text after a mid-stream fault, TTFT. Every page must load
and run with no console error and no Content-Security-Policy violation. Screenshots of each state
are saved under the test's temporary directory (`docs/playground-*.png` are copies of them).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, async_playwright, expect

from proxy.config import demo_settings
from proxy.playground import CSP
from tests.conftest import Proxy, ProxyFactory

DEMO_ANSWER = "echo: hello (messages: 2)"
MS = re.compile(r"^\+\d+ ms$")
TTFT = re.compile(r"TTFT \d+ ms")


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: required)")
        pytest.skip(reason)
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        await b.close()


@pytest.fixture
async def demo(make_proxy: ProxyFactory) -> Proxy:
    return await make_proxy(demo_settings())


@dataclass
class Playground:
    page: Page
    shots: Path
    problems: list[str] = field(default_factory=list)

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=self.shots / f"playground-{name}.png")

    async def ask(self, prompt: str, *, transport: str | None = None, fault: str | None = None) -> None:
        """Send `prompt`, first choosing a transport (which starts a new conversation) or a fault."""
        if transport is not None:
            await self.page.get_by_label("Transport").select_option(label=transport)
        if fault is not None:
            await self.page.get_by_label("Fault (demo)").select_option(label=fault)
        await self.page.get_by_placeholder("Ask the agent…").fill(prompt)
        await self.page.get_by_role("button", name="Send").click()

    async def wait_done(self) -> None:
        await expect(self.page.get_by_role("button", name="Send")).to_be_enabled(timeout=20_000)

    def entries(self, kind: str) -> Locator:
        return self.page.locator(f"#timeline li.ev-{kind}")

    def answers(self) -> Locator:
        return self.page.locator("#turns li.turn-agent")


@pytest.fixture
async def playground(browser: Browser, demo: Proxy, tmp_path: Path) -> AsyncIterator[Playground]:
    page = await browser.new_page(viewport={"width": 1100, "height": 640})
    pg = Playground(page, tmp_path)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            pg.problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: pg.problems.append(f"page error: {error}"))
    # Chromium logs CSP violations to the console too; this names them even if that changes.
    await page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));"
    )
    await page.goto(f"{demo.url}/")
    await expect(page.locator("body[data-ready=true]")).to_be_attached()
    yield pg
    await page.close()
    assert pg.problems == []


async def test_the_page_is_served_with_a_strict_csp_and_the_root_redirects(
    demo: Proxy, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{demo.url}/", allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/playground"
    async with session.get(f"{demo.url}/playground") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        assert resp.headers["Content-Security-Policy"] == CSP
        html = await resp.text()
    assert "<script" in html and "http" not in html.replace("http-equiv", "")
    for name, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        async with session.get(f"{demo.url}/playground/{name}") as resp:
            assert resp.status == 200 and resp.content_type == kind
    for missing in ["index.html", "nope.js", "..%2Fapp.py"]:
        async with session.get(f"{demo.url}/playground/{missing}") as resp:
            assert resp.status == 404


@pytest.mark.parametrize("transport", ["SSE", "WebSocket", "OpenAI"])
async def test_a_prompt_streams_with_its_timeline_and_the_conversation_continues(
    playground: Playground, transport: str
) -> None:
    page = playground.page
    await expect(page.get_by_label("Agent")).to_have_value("demo")
    await playground.ask("hello", transport=transport)
    await playground.wait_done()
    await expect(playground.answers().nth(0)).to_have_text(DEMO_ANSWER)
    await expect(playground.entries("start")).to_have_count(1)
    await expect(playground.entries("start")).to_contain_text("demo · demo")
    deltas = playground.entries("delta")
    assert await deltas.count() >= 3
    await expect(deltas.nth(0).locator(".ev-at")).to_have_text(MS)
    end = playground.entries("end")
    await expect(end).to_contain_text("stop")
    await expect(end).to_contain_text(TTFT)
    await expect(end).to_contain_text("usage ")
    if transport != "OpenAI":
        await expect(end).to_contain_text("attempts 1")
    await playground.shot(f"{transport.lower()}")

    await playground.ask("again")
    await playground.wait_done()
    # The second turn sees the first: system, user, assistant, user.
    await expect(playground.answers().nth(1)).to_have_text("echo: again (messages: 4)")


async def test_a_mid_stream_drop_shows_the_discarded_text_struck_through(playground: Playground) -> None:
    await playground.ask("hello", fault="drop mid-stream")
    await playground.wait_done()
    answer = playground.answers().nth(0)
    await expect(answer.locator("span.discarded")).to_have_text("echo: hello (messages:")
    await expect(answer.locator("span:not(.discarded)")).to_have_text(DEMO_ANSWER)
    retry = playground.entries("retry")
    await expect(retry).to_contain_text("attempt 1/3 failed: stream_dropped")
    await expect(retry.locator("s.discarded")).to_have_text("echo: hello (messages:")
    await expect(playground.entries("end")).to_contain_text("attempts 2")
    await playground.shot("mid-stream-drop")


async def test_a_429_is_retried_after_its_retry_after(playground: Playground) -> None:
    await playground.ask("hello", transport="WebSocket", fault="429, then success")
    await playground.wait_done()
    await expect(playground.entries("retry")).to_contain_text("rate_limited, next in 1000 ms")
    await expect(playground.answers().nth(0)).to_have_text(DEMO_ANSWER)
    await expect(playground.answers().nth(0).locator("span.discarded")).to_have_count(0)


async def test_a_stall_shows_heartbeats_then_the_retry_and_cancel_ends_a_stream(
    playground: Playground,
) -> None:
    await playground.ask("hello", fault="stall before the first token")
    await playground.wait_done()
    await expect(playground.entries("retry")).to_contain_text("first_token_timeout")
    assert await playground.entries("heartbeat").count() >= 2
    await expect(playground.answers().nth(0)).to_have_text(DEMO_ANSWER)
    await playground.shot("stall-heartbeats")

    # Every other request stalls: cancel the next one while it waits for its first token.
    await playground.ask("and now cancel", transport="WebSocket", fault="stall before the first token")
    await expect(playground.entries("heartbeat").nth(1)).to_be_attached(timeout=10_000)
    await playground.page.get_by_role("button", name="Cancel").click()
    await playground.wait_done()
    await expect(playground.entries("end").last).to_contain_text("cancelled")
