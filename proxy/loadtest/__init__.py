"""Load generator for LLM streaming endpoints: SSE, WebSocket and OpenAI-compatible targets.

`await run_load(LoadConfig(...))` runs one test and returns a `LoadResult`; the CLI is
`agent-proxy loadtest` (`proxy.loadtest.cli`).
"""

from proxy.loadtest.config import LoadConfig, load_prompts
from proxy.loadtest.record import RequestRecord
from proxy.loadtest.result import LoadResult
from proxy.loadtest.runner import LiveStats, run_load

__all__ = ["LiveStats", "LoadConfig", "LoadResult", "RequestRecord", "load_prompts", "run_load"]
