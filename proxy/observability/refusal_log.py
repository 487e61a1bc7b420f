"""One structured line per refused request (401, 403, 404, 413, 422, 429, …), rate-limited per code.

A client in a loop, or a key over its limit, is refused thousands of times a minute; one line each
would drown the log it is meant to explain. So each `code` gets at most `per_interval` lines per
`interval_s`, and the first line after a quiet spell carries `suppressed`: how many refusals of that
code were left out since its last line. Codes come from a fixed set, so the counters stay few.

The line holds what an operator acts on (status, code, auth reason, key name, agent, method, route)
and never a message: messages can quote what the client sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from proxy.log_fields import FIELDS_ATTR

REFUSAL_LOGGER: Final = "agent_proxy.refusals"


@dataclass(slots=True)
class _Window:
    started: float
    lines: int = 0
    suppressed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    status: int
    code: str
    method: str
    route: str
    """The route's pattern (`/v1/agents/{agent}/run`), or the path when no route took it."""
    key: str | None
    """The configured name of the caller's key; None when it presented none that is valid."""
    agent: str | None
    reason: str | None = None
    """Why, beyond the code, where the proxy knows (the auth failure: `missing`, `expired_token`, …)."""


class RefusalLog:
    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        per_interval: int = 10,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger or logging.getLogger(REFUSAL_LOGGER)
        self._per_interval = per_interval
        self._interval_s = interval_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def admits(self, code: str) -> bool:
        """Whether a refusal with `code` gets a line now; counts it as suppressed otherwise. Call it
        first, so that building a line's fields costs nothing for the refusals left out."""
        if not self._log.isEnabledFor(logging.INFO):
            return False
        now = self._clock()
        window = self._windows.get(code)
        if window is None:
            window = self._windows[code] = _Window(now)
        elif now - window.started >= self._interval_s:
            window.started, window.lines = now, 0
        if window.lines >= self._per_interval:
            window.suppressed += 1
            return False
        window.lines += 1
        return True

    def write(self, refusal: Refusal) -> None:
        """The line of a refusal `admits` let through."""
        window = self._windows[refusal.code]
        fields = {
            "event": "request_refused",
            "status": refusal.status,
            "code": refusal.code,
            "reason": refusal.reason,
            "key": refusal.key,
            "agent": refusal.agent,
            "method": refusal.method,
            "route": refusal.route,
            "suppressed": window.suppressed,
        }
        window.suppressed = 0
        self._log.info("request refused", extra={FIELDS_ATTR: fields})
