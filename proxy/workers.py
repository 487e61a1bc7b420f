"""`serve --workers N`: N processes on one port (SO_REUSEPORT), one metrics view, one drain.

The parent reserves the port, prepares prometheus-client's multiprocess directory, starts the
workers as `serve --worker`, forwards SIGTERM/SIGINT/SIGHUP to them, and tells the metrics when one ends.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from types import FrameType

from proxy.config import CONFIG_ENV, Settings
from proxy.observability.multiprocess import prepare_multiprocess_dir, worker_exited

log = logging.getLogger("agent_proxy")

PR_SET_PDEATHSIG = 1


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket: fixes the port (also for port 0) for the workers."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def die_with_parent() -> None:
    """In a worker: get SIGTERM (and so drain) when the parent dies, even by SIGKILL (Linux)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run_workers(settings: Settings, args: argparse.Namespace, reserved: socket.socket) -> int:
    """Run the workers on `reserved` (from `reserve_port`) until they have all exited."""
    server = settings.server
    port = reserved.getsockname()[1]
    metrics_dir = prepare_multiprocess_dir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    if args.config:
        env[CONFIG_ENV] = args.config
    command = [
        sys.executable,
        "-m",
        "proxy.cli",
        "serve",
        "--worker",
        "--workers",
        "1",
        "--host",
        server.host,
        "--port",
        str(port),
    ]
    # Workers in their own process group: a terminal's Ctrl-C reaches them once, through `forward`,
    # not also directly (they count interrupts: the third one quits at once).
    workers = [subprocess.Popen(command, env=env, process_group=0) for _ in range(server.workers)]
    log.info("started %d workers on port %d: pids %s", len(workers), port, [w.pid for w in workers])

    running = {w.pid for w in workers}

    def forward(signum: int, frame: FrameType | None) -> None:
        for pid in running:
            os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)  # each worker re-reads the keys file
    codes: dict[int, int] = {}
    try:
        while running:
            pid, status = os.wait()
            if pid not in running:
                continue
            running.discard(pid)
            codes[pid] = os.waitstatus_to_exitcode(status)
            worker_exited(pid, metrics_dir)
            if codes[pid] != 0:
                log.error("worker %d exited with %d", pid, codes[pid])
    finally:
        reserved.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0 if all(code == 0 for code in codes.values()) else 1
