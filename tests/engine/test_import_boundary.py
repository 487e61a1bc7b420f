"""The engine knows nothing of HTTP: importing it loads no HTTP server, transport or upstream client."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("aiohttp", "proxy.transports", "proxy.upstream", "proxy.agents", "proxy.app")


def test_importing_the_engine_loads_no_http_transport_or_upstream_client() -> None:
    probe = (
        "import sys, proxy.engine, proxy.engine.stream, proxy.engine.service\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith(forbidden))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == []
