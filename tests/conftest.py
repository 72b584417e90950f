"""Shared fixtures: the CIFAR-10 sample and a local HTTP server that serves it."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "cifar-10-sample-python.tar.gz"
SAMPLE_MD5 = "7c169e720ae84550ca63fb9379521fdd"
SAMPLE_TRAIN = 5000


@pytest.fixture(scope="session")
def sample() -> Path:
    """The shared CIFAR-10 sample (official layout, 5,000 training images)."""
    if not SAMPLE.is_file():
        pytest.fail(f"{SAMPLE} is missing: the tests need ../shared beside the repository")
    return SAMPLE


@dataclass
class Server:
    """What the test server serves, how it misbehaves, and what it was asked."""

    payload: bytes = b""
    ignore_range: bool = False
    truncate_first: int | None = None  # bytes to send before dropping the first response
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            header = self.headers.get("Range")
            server.ranges.append(header)
            data, start = server.payload, 0
            if header and not server.ignore_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if server.truncate_first is not None:
                cut, server.truncate_first = server.truncate_first, None
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve(payload: bytes) -> Iterator[Server]:
    """Serve ``payload`` on 127.0.0.1 at /cifar-10-python.tar.gz while in the block."""
    state = Server(payload=payload)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/cifar-10-python.tar.gz"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def http_server(sample: Path) -> Iterator[Server]:
    """A server on 127.0.0.1 serving the sample archive."""
    with serve(sample.read_bytes()) as server:
        yield server
