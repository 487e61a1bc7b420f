"""The shared-state backends: memory for one process, Redis for several processes and
replicas. `build_state` makes the `proxy.engine.shared.SharedState` the config asks for; limit
windows and concurrency counts (`limits.py`, `redis_limits.py`) sit beside it."""
