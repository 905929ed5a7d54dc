"""Ports for servers the suite starts as subprocesses or on fixed addresses.

Binding port 0 and closing the socket hands back a port from the kernel's ephemeral
range, which any outgoing connection on the machine may take before the server binds
it (CI saw ``Address already in use``). These ports come from below that range
instead, from a block of its own for each pytest-xdist worker, so two workers never
hand out the same port and no client socket is ever given one.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

_FIRST_PORT = 12000
_BLOCK_SIZE = 2000
_BLOCKS = 10  # 12000-31999, below Linux's default ephemeral range (32768-60999)


def _worker_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % _BLOCKS if worker.isdigit() else 0
    start = _FIRST_PORT + index * _BLOCK_SIZE
    return range(start, start + _BLOCK_SIZE)


def _candidates() -> itertools.cycle[int]:
    block = _worker_block()
    # A random starting point, so two suites on one machine rarely walk the same ports.
    offset = random.randrange(len(block))
    return itertools.cycle([*block[offset:], *block[:offset]])


_next_candidate = _candidates()


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now and the kernel will not hand out."""
    for _ in range(_BLOCK_SIZE):
        port = next(_next_candidate)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left in this worker's block")
