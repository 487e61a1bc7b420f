"""The open-file limit, against the streams a process is allowed to run.

Each stream holds two sockets (its client's and its upstream's). Past the limit the process can
neither accept a client nor connect to an upstream (EMFILE): clients see resets instead of a 503.
"""

from __future__ import annotations

import resource

SOCKETS_PER_STREAM = 2
OTHER_FILES = 256
"""Listening sockets, metrics scrapes, Redis, logs and the interpreter's own files."""


def raise_open_files() -> int:
    """Lift the soft limit to the hard one (many systems start processes at 1024); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def streams_that_fit(limit: int) -> int:
    if limit == resource.RLIM_INFINITY:
        return 1 << 62
    return max(0, (limit - OTHER_FILES) // SOCKETS_PER_STREAM)
