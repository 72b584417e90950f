"""An emulated network link: a TCP proxy that adds a time to first byte per request
and paces bytes at a set bandwidth.

This machine's kernel has no ``netem``, and a storage tier that stands for an object
store across a LAN or a WAN needs both: every request pays a round trip, every byte the
link's bandwidth. The proxy sits between a client and a server on the loopback
interface (e.g. the S3 server :mod:`storebench.objectstore` starts) and, per
connection:

- counts a *request* each time the client sends after the server has answered (HTTP/1.1
  without pipelining, as S3 clients speak it: exact), and the bytes each way;
- holds the first byte of each answer for ``latency_s`` (time to first byte, the
  request's round trip);
- paces the bytes of every connection through one shared link of ``bandwidth``
  bytes/s each way, so eight parallel range reads share the link as they would a
  real one.

The client sees a slower server; the server sees nothing. :attr:`LinkProxy.counts`
gives requests and bytes, so a result can say how many requests and bytes a read
cost beside its time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import selectors
import socket
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

CHUNK = 64 * 1024  # bytes moved per send: small enough to pace a slow link smoothly


@dataclasses.dataclass(frozen=True)
class Link:
    """What the link adds: ``latency_s`` before each answer's first byte, and a
    ``bandwidth`` in bytes/s each way (0: unlimited)."""

    latency_s: float = 0.0
    bandwidth: float = 0.0

    def __post_init__(self) -> None:
        if not (self.latency_s >= 0 and self.bandwidth >= 0):
            raise ValueError(f"a link needs latency >= 0 and bandwidth >= 0, not {self}")

    @classmethod
    def of(cls, latency_ms: float = 0.0, bandwidth_mbit: float = 0.0) -> Link:
        """The link of a tier's settings: latency in ms, bandwidth in Mbit/s."""
        return cls(latency_ms / 1e3, bandwidth_mbit * 1e6 / 8)


class _Pacer:
    """One direction of the link: bytes go out no faster than ``rate`` bytes/s, shared by
    every connection (a send books the link's next free time)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._free_at = 0.0
        self._lock = threading.Lock()

    def wait(self, size: int) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = time.perf_counter()
            start = max(now, self._free_at)
            self._free_at = start + size / self.rate
            until = self._free_at
        delay = until - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


class LinkProxy:
    """A TCP proxy on 127.0.0.1 (a free port, or ``port``) to ``upstream`` through an
    emulated :class:`Link`. Use as a context manager; :attr:`address` is where clients
    connect. Every thread it starts ends when it is closed."""

    def __init__(self, upstream: tuple[str, int], link: Link, port: int = 0) -> None:
        self.upstream = upstream
        self.link = link
        self._down = _Pacer(link.bandwidth)  # server -> client
        self._up = _Pacer(link.bandwidth)  # client -> server
        self._counts = {"requests": 0, "bytes_up": 0, "bytes_down": 0, "connections": 0}
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", port))
        # A client that connects here gets the counts as JSON (other processes' view)
        self._count_listener = socket.create_server(("127.0.0.1", 0))
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()

    @property
    def address(self) -> tuple[str, int]:
        return self._listener.getsockname()[:2]

    @property
    def count_port(self) -> int:
        """The port that answers every connection with :attr:`counts` as JSON."""
        return self._count_listener.getsockname()[1]

    @property
    def counts(self) -> dict[str, int]:
        """Requests, bytes each way and connections so far."""
        with self._lock:
            return dict(self._counts)

    def __enter__(self) -> LinkProxy:
        self._start(self._accept, "accept")
        self._start(self._answer_counts, "counts")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, close every connection and wait for the threads."""
        self._closed.set()
        for listener in (self._listener, self._count_listener):
            with contextlib.suppress(OSError):
                listener.close()
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def _start(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"link-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _add(self, key: str, value: int) -> None:
        with self._lock:
            self._counts[key] += value

    def _answer_counts(self) -> None:
        self._count_listener.settimeout(0.2)
        while not self._closed.is_set():
            try:
                client, _ = self._count_listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with client:
                client.sendall(json.dumps(self.counts).encode())

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError as error:
                log.warning("link proxy: upstream %s:%d refused: %s", *self.upstream, error)
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
                self._counts["connections"] += 1
            self._start(self._serve, "conn", client, server)

    def _serve(self, client: socket.socket, server: socket.socket) -> None:
        """Move bytes both ways until either side closes. A request starts when the
        client sends after the server's answer began; that answer's first byte waits
        ``latency_s``."""
        answering = True  # no request yet: the first client bytes start one
        waiting = False  # a request is out and its answer has not begun
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ)
        selector.register(server, selectors.EVENT_READ)
        try:
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source = key.fileobj
                    data = source.recv(CHUNK)
                    if not data:
                        return
                    if source is client:
                        if answering:
                            answering, waiting = False, True
                            self._add("requests", 1)
                        self._up.wait(len(data))
                        # counted before they are passed on: once a side has the bytes,
                        # the counts hold them (a reader's counts right after a read)
                        self._add("bytes_up", len(data))
                        server.sendall(data)
                    else:
                        if waiting:
                            waiting, answering = False, True
                            if self.link.latency_s:
                                time.sleep(self.link.latency_s)
                        self._down.wait(len(data))
                        self._add("bytes_down", len(data))
                        client.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            for sock in (client, server):
                sock.close()
            with self._lock:
                self._sockets -= {client, server}


def null_request_s(address: tuple[str, int], path: str = "/") -> float:
    """Seconds to the first byte of a null request (an HTTP HEAD of ``path``) through
    ``address``: the link's time to first byte as a client sees it, server included."""
    start = time.perf_counter()
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        sock.recv(1)
        first = time.perf_counter() - start
        while sock.recv(CHUNK):
            pass
    return first
