"""The shared state the config asks for: memory for one process, Redis for several."""

from __future__ import annotations

import os

from proxy.config import Settings
from proxy.engine.shared import SharedState, StateMetrics
from proxy.state.memory import MemoryState


class StateConfigError(ValueError):
    """The configured backend cannot be used as configured."""


def build_state(settings: Settings, metrics: StateMetrics | None = None) -> SharedState:
    state = settings.state
    if state.backend == "memory":
        return MemoryState(settings.conversations, settings.resume, state.max_logs)
    url = os.environ.get(state.redis_url_env)
    if not url:
        raise StateConfigError(
            f'state.backend = "redis" needs the Redis URL in ${state.redis_url_env} (state.redis_url_env)'
        )
    from proxy.state.redis import RedisState  # only a Redis deployment loads the client

    longest = max(settings.timeouts_for(agent).total_s for agent in settings.agents)
    return RedisState(
        url, state, settings.resume, settings.conversations, longest_stream_s=longest, metrics=metrics
    )
