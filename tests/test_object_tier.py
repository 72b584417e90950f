"""Object-store tiers: every format written, uploaded and read back on an S3 bucket
(storebench.objecttier), checked before any job, and the faults that stop a read."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_tiers import _marks, needs_weed

from storebench import config as configuration
from storebench import measure, objectstore, objecttier, pagecache, tiers
from storebench.errors import StorebenchError
from storebench.formats import make_format
from storebench.host import QuietFilesystem
from storebench.present import tables

from conftest import ROOT

PLACE = objecttier.Place("http://127.0.0.1:9", "bucket", "s3-lan", 0, "", 0)


def _config(**tier: Any) -> dict[str, Any]:
    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["tiers"] = {"s3-lan": tier}
    configuration.normalize(config)
    return config


# --- without a server ---------------------------------------------------------------------


def test_the_place_goes_to_the_jobs_in_the_environment_without_a_secret(monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    text = PLACE.to_env()
    assert "very-secret" not in text and "SECRET" not in text
    monkeypatch.setenv(objecttier.ENV, text)
    assert objecttier.Place.from_env() == PLACE
    monkeypatch.delenv(objecttier.ENV)
    assert objecttier.Place.from_env() is None


def test_formats_are_on_the_object_store_only_in_a_tiers_run(monkeypatch) -> None:
    plain = make_format("png", {"kind": "png", "compress_level": 1})
    assert not plain.remote and plain.traffic() is None
    monkeypatch.setenv(objecttier.ENV, PLACE.to_env())
    wrapped = make_format("png", {"kind": "png", "compress_level": 1})
    assert wrapped.remote and isinstance(wrapped, objecttier.OnObjectStore)
    # everything but where the store lives is the format's own
    assert (wrapped.kind, wrapped.options(), wrapped.lossy) == ("png", plain.options(), False)
    assert "obstore" in wrapped.libraries and "obstore" not in plain.libraries
    assert wrapped.describe()["remote_way"] == "key"
    # no server of ours: nothing this machine can evict
    assert wrapped.cache_files(Path("/nonexistent")) == []


def test_a_store_folder_without_its_pointer_is_refused_in_one_line(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(objecttier.ENV, PLACE.to_env())
    fmt = make_format("raw", {"kind": "npy"})
    with pytest.raises(StorebenchError, match=r"no object-store\.json .* --forcerun store$"):
        fmt.open(tmp_path)


def test_missing_credentials_are_named_before_any_request(monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(
        StorebenchError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set; export"
    ):
        PLACE.endpoint()
    config = _config(kind="s3", endpoint="http://127.0.0.1:9")
    with pytest.raises(StorebenchError, match=r"^tier s3-lan: AWS_ACCESS_KEY_ID and"):
        tiers.check(config)


# what obstore's errors say (shortened): every one names the URL, with its port, and the
# request's elapsed time, which may hold "403" without any server having answered 403
_REFUSED = (
    "Generic S3 error: Error performing GET http://127.0.0.1:14030/mine?list-type=2 in "
    "101.403ms, after 1 retries - HTTP error: error sending request ... ConnectError("
    '"tcp connect error", 127.0.0.1:14030, Os { code: 111, kind: ConnectionRefused })'
)
_FORBIDDEN = (
    "Generic S3 error: Error performing GET http://127.0.0.1:47325/checked?list-type=2 in "
    "1.150724ms - Server returned non-2xx status code: 403 Forbidden: <?xml ...>"
)
_NO_BUCKET = (
    "Generic S3 error: Error performing GET http://127.0.0.1:40312/nosuch?list-type=2 in "
    "1.471339ms - Server returned non-2xx status code: 404 Not Found: <Error><Code>"
    "NoSuchBucket</Code>"
)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (_REFUSED, "is unreachable; check the endpoint's address"),
        (_FORBIDDEN, "refused the credentials; set AWS_ACCESS_KEY_ID"),
        (_FORBIDDEN.replace("403 Forbidden", "400 Bad Request") + "InvalidAccessKeyId", "refused"),
        (_NO_BUCKET, "does not exist; create it"),
        (_NO_BUCKET.replace("NoSuchBucket", "Slow Down"), "failed: Generic S3 error"),
    ],
)
def test_a_first_requests_failure_is_named_from_its_text_not_its_digits(text, said) -> None:
    assert objectstore.check_failure(text).startswith(said)


@pytest.mark.parametrize(
    ("tier", "message"),
    [
        ({"kind": "s3", "path": "/mnt"}, "tiers.s3-lan: path is for kind directory, not s3"),
        ({"kind": "s3", "endpoint": "minio:9000"}, "is not a URL; give it as http://host:port"),
        (
            {"kind": "s3", "endpoint": "https://s3.example.org", "latency_ms": 5},
            "an emulated link (latency_ms, bandwidth_mbit) needs an http:// endpoint",
        ),
        ({"kind": "directory"}, "a directory tier needs the mount's path"),
    ],
)
def test_a_bad_object_store_tier_is_refused_in_one_line(
    tier: dict[str, Any], message: str, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    with pytest.raises(StorebenchError) as caught:
        tiers.check(_config(**tier))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreachable_endpoint_is_named_with_its_tier(monkeypatch) -> None:
    pytest.importorskip("obstore")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    port = objectstore.free_ports(1)[0]  # nothing listens there
    with pytest.raises(StorebenchError, match=r"^tier s3-lan: http://127\.0\.0\.1:\d+, bucket "):
        tiers.check(_config(kind="s3", endpoint=f"http://127.0.0.1:{port}"))


def test_the_schema_takes_an_s3_tier_and_refuses_a_negative_latency(monkeypatch) -> None:
    monkeypatch.setattr(objectstore, "weed_binary", lambda: Path("weed"))
    configuration.check(_config(kind="s3", latency_ms=30, bandwidth_mbit=150, cutoffs=[100]))
    with pytest.raises(StorebenchError, match="latency_ms"):
        configuration.check(_config(kind="s3", latency_ms=-1))


def test_an_object_store_tiers_run_has_no_parallel_jobs_and_fewer_latency_samples() -> None:
    config = _config(kind="s3", cutoffs=[100])
    config["parallel"]["cutoffs"] = [100]
    config["training"]["cutoffs"] = [100]
    sub = tiers.sub_config(config, "s3-lan", "/data/cifar.tar.gz")
    assert sub["parallel"]["cutoffs"] == [] and sub["dataloader"]["cutoffs"] == []
    # the training loop's threads run there; its worker processes do not
    assert sub["training"]["cutoffs"] == [100] and sub["training"]["processes"] == []
    assert sub["training"]["threads"] == config["training"]["threads"]
    assert sub["tiers"] == {} and sub["cutoffs"] == [100]
    assert sub["latency_samples"] == 100 and config["latency_samples"] == 1000
    assert sub["latency_n"] == 100  # no store of 1,000 images: its largest
    config["tiers"]["s3-lan"]["cutoffs"] = [100, 1000, 100000]
    config["latency_n"] = 100000
    # single images staged from the store of 1,000, not 100,000 (minutes, not hours)
    assert tiers.sub_config(config, "s3-lan", None)["latency_n"] == 1000


def test_where_an_object_store_tier_ran_names_the_link_set_and_measured() -> None:
    described = {
        "object_store": {
            "endpoint": "SeaweedFS started by storebench",
            "bucket": "storebench",
            "latency_ms": 30,
            "bandwidth_mbit": 150,
            "measured": {
                "request_ms": {"median": 33.1, "lo": 32.0, "hi": 35.0, "coverage": 0.984},
                "get_mbit_s": {"median": 141.0, "lo": 139.0, "hi": 143.0, "coverage": 0.984},
                "probes": 7,
            },
        }
    }
    text = tiers.where(described)
    assert text.startswith("S3 bucket 'storebench' on SeaweedFS started by storebench")
    assert "a link of 30 ms and 150 Mbit/s" in text and "33.1 ms" in text and "141 Mbit/s" in text


def _read_result(traffic: list[dict[str, float]], resident: list[float]) -> dict[str, Any]:
    return {
        "schema": 2,
        "format": "png",
        "kind": "png",
        "n": 100,
        "cache": "cold",
        "cache_verified": measure.cache_verified("cold", resident),
        "order": "random",
        "samples": {"read_s": [0.5, 0.6, 0.55]},
        "reference_samples": {"read_s": [0.1, 0.1, 0.1]},
        "reference": {"format": "raw"},
        "residency_before": resident,
        "tier": {"remote_way": "key"},
        "traffic": traffic,
        "options": {},
    }


def test_a_reads_row_says_its_way_requests_and_bytes() -> None:
    traffic = [{"requests": 101, "bytes_down": 3000}, {"requests": 103, "bytes_down": 3100}]
    traffic.append({"requests": 102, "bytes_down": 2900})
    row = tables.timing_rows([_read_result(traffic, [0.0, 0.0, 0.0])])[0]
    assert (row["remote_way"], row["requests"], row["bytes_down"]) == ("key", 102, 3000)
    assert row["cache"] == "cold" and row["residency_max"] == 0.0


def test_a_cold_read_of_a_cache_nobody_can_evict_is_not_called_cold() -> None:
    nan = float("nan")
    assert not measure.cache_verified("cold", [nan, nan])
    assert measure.cache_verified("cold", [0.0, 0.01])  # the check can pass
    row = tables.timing_rows([_read_result([], [nan, nan, nan])])[0]
    assert row["cache"] == tables.NOT_VERIFIED and row["residency_max"] == ""


def test_a_cold_read_evicts_the_servers_files_as_they_are_at_that_read(tmp_path: Path) -> None:
    """A server compacts its metadata as it works: between two reads one of its files
    is gone and a new one, just written, is in the cache. Each cold read evicts the
    files there are then (the list of the first read fails on the gone file, and
    misses the new one, whose pages would leave the read not verified cold)."""
    server = tmp_path / "server"
    server.mkdir()
    serial = iter(range(1000))
    seen: list[float] = []  # how much of the server's files was cached as a read began

    def compact() -> None:
        for old in server.iterdir():
            old.unlink()
        (server / f"{next(serial):06d}.ldb").write_bytes(os.urandom(1 << 20))

    compact()
    base = make_format("raw", {"kind": "npy"})

    class OnAServer(type(base)):  # type: ignore[misc]
        remote = True

        def cache_files(self, directory: Path) -> list[Path]:
            return [*self.files(directory), *sorted(server.iterdir())]

        def open(self, directory: Path) -> Any:
            seen.append(pagecache.residency(sorted(server.iterdir())))
            compact()  # the server works while the store is read
            return super().open(directory)

    fmt = OnAServer(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    images, labels = _images()
    store = tmp_path / "store"
    store.mkdir()
    fmt.write(store, images, labels)
    indices = measure.read_indices(len(images), "random", 0)
    result = measure.measure_read(fmt, store, images, labels, indices, "cold", 3)
    assert len(result["residency_before"]) >= 3  # a read, a new file before each
    assert result["cache_verified"] and max(result["residency_before"]) <= 0.05
    # every timed read (the format's and its floor's, here the same) began with the
    # server's newest file evicted; the untimed first reads did not
    assert sum(s <= 0.05 for s in seen) >= 2 * len(result["residency_before"])


# --- on a SeaweedFS server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_tier(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[objecttier.Place, dict[str, str]]]:
    """One server for the tests that leave it running (a graceful stop takes ~15 s): a
    tier's object store behind the link proxy, and the environment of its run's jobs."""
    spec = {"kind": "s3", "latency_ms": 1, "bandwidth_mbit": 1000}
    with tiers.object_store("s3-lan", spec, tmp_path_factory.mktemp("tier")) as found:
        yield found


@pytest.fixture
def tier(tmp_path: Path, monkeypatch) -> Iterator[objecttier.Place]:
    """A server of the test's own (for the tests that kill it), its place and
    credentials in the environment as a tier's job has them."""
    spec = {"kind": "s3", "latency_ms": 1, "bandwidth_mbit": 1000}
    with (
        tiers.object_store("s3-lan", spec, tmp_path / "tier") as (place, env),
        monkeypatch.context() as patched,
    ):
        for key, value in env.items():
            patched.setenv(key, value)
        yield place


def _objects(place: objecttier.Place) -> list[str]:
    import obstore

    store = place.location("x").store
    return [item["path"] for batch in obstore.list(store, f"{place.prefix}/") for item in batch]


def _images(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, 10, n).astype(np.uint8)


@_marks(needs_weed)
@pytest.mark.parametrize("kind", ["png", "lmdb"])
def test_a_store_on_the_tier_is_uploaded_read_cold_and_counted(
    shared_tier: tuple[objecttier.Place, dict[str, str]], tmp_path: Path, kind: str, monkeypatch
) -> None:
    """The store job's protocol on the tier: pairs with the floor, each copy uploaded;
    the copies it discards leave no objects behind; the read job's protocol reads it
    back cold (the server's files evicted), every request counted."""
    place, env = shared_tier
    tier = dataclasses.replace(place, prefix=f"{place.prefix}/{kind}")
    for key, value in {**env, objecttier.ENV: tier.to_env()}.items():
        monkeypatch.setenv(key, value)
    images, labels = _images()
    fmt, floor = make_format(kind, {"kind": kind}), make_format("raw", {"kind": "npy"})
    assert fmt.remote and floor.remote
    stores = tmp_path / "stores"
    quiet = QuietFilesystem(stores, 0, 3, tmp_path / "baseline.json", tmp_path / "trash")
    stores.mkdir()
    out, ref_out = stores / kind / "200", stores / "raw" / "200"
    for side, target in ((fmt, out), (floor, ref_out)):
        result, staged = measure.measure_store(
            side, images, labels, target, tmp_path / "trash", 2, quiet, reference=floor
        )
        os.replace(staged, target)
    pointers = [json.loads((p / objecttier.POINTER).read_text()) for p in (out, ref_out)]
    kept = {f"{tier.prefix}/{p['key']}/" for p in pointers}
    # only the two kept stores' objects are left (every pair uploaded two copies)
    assert {name[: name.index("/", len(tier.prefix) + 1) + 1] for name in _objects(tier)} == kept
    assert sum(p["objects"] for p in pointers) == len(_objects(tier))
    indices = measure.read_indices(200, "random", 0)
    result = measure.measure_read(
        fmt, out, images, labels, indices, "cold", 2, reference=(floor, ref_out)
    )
    assert result["cache_verified"] and max(result["residency_before"]) <= 0.05
    requests = [t["requests"] for t in result["traffic"]]
    if kind == "png":  # one request per image, plus the labels
        assert requests == [201, 201]
    else:  # staged: the manifest and the one data file (and its lock file)
        assert all(2 <= r <= 4 for r in requests)
    assert all(t["bytes_down"] >= 200 * 3072 for t in result["traffic"])
    assert all(t["server_cpu_s"] >= 0 for t in result["traffic"])
    # nothing of the read's scratch left beside the store
    assert not list(out.parent.glob(".remote.*"))


@_marks(needs_weed)
@pytest.mark.parametrize("kind", ["png", "lmdb", "tfrecord"])
def test_the_training_loops_threads_read_a_store_on_the_tier(
    shared_tier: tuple[objecttier.Place, dict[str, str]], tmp_path: Path, kind: str, monkeypatch
) -> None:
    """Loader threads on an object-store tier: each opens the store the format's way
    (LMDB's threads share one staged copy), every image once with the augmented pixels
    of the stored ones, no scratch left."""
    from storebench import training

    place, env = shared_tier
    tier = dataclasses.replace(place, prefix=f"{place.prefix}/train-{kind}")
    for key, value in {**env, objecttier.ENV: tier.to_env()}.items():
        monkeypatch.setenv(key, value)
    images, labels = _images()
    fmt = make_format(kind, {"kind": kind})
    store = tmp_path / kind
    store.mkdir()
    fmt.write(store, images, labels)
    order = np.random.default_rng(2).permutation(len(images))
    loop = training.Loop(batch_size=32, step_s=0.002, crop=24)
    result = training.measure_loop(fmt, store, images, labels, order, loop, "threads", 3)
    assert all(0 < au <= 1 for au in result["samples"]["au"])
    assert not list(tmp_path.glob(".remote.*"))


@_marks(needs_weed)
def test_a_server_that_dies_mid_read_ends_the_read_in_one_line(
    tier: objecttier.Place, tmp_path: Path
) -> None:
    images, labels = _images(100)
    fmt = make_format("png", {"kind": "png"})
    store = tmp_path / "png"
    store.mkdir()
    fmt.write(store, images, labels)
    reader = fmt.open(store)
    os.killpg(tier.server_pid, signal.SIGKILL)
    out = np.empty_like(images), np.empty_like(labels)
    with pytest.raises(StorebenchError) as caught:
        reader.read_into(np.arange(100), *out)
    reader.close()
    text = str(caught.value)
    assert text.startswith(f"object store {tier.url}, bucket 'storebench': a read failed (")
    assert "check that the server runs" in text and "\n" not in text
    assert not list(tmp_path.glob(".remote.*"))


@_marks(needs_weed)
def test_an_upload_cut_short_leaves_no_store_a_rerun_would_trust(
    tier: objecttier.Place, tmp_path: Path
) -> None:
    images, labels = _images(100)
    fmt = make_format("png", {"kind": "png"})
    os.killpg(tier.server_pid, signal.SIGKILL)
    stores = tmp_path / "stores"
    stores.mkdir()
    quiet = QuietFilesystem(stores, 0, 3, tmp_path / "baseline.json", tmp_path / "trash")
    with pytest.raises(StorebenchError, match="an upload failed"):
        measure.measure_store(fmt, images, labels, stores / "png", tmp_path / "trash", 1, quiet)
    assert not list(stores.iterdir())


@_marks(needs_weed)
def test_a_port_taken_before_the_server_binds_it_is_tried_again(
    tmp_path: Path, monkeypatch
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    chosen = objectstore.free_ports
    calls = []

    def first_taken(count: int) -> list[int]:
        ports = chosen(count)
        calls.append(ports)
        return [taken.getsockname()[1], *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(objectstore, "free_ports", first_taken)
    try:
        with objectstore.seaweedfs(tmp_path / "s3") as endpoint:
            assert endpoint.url.startswith("http://127.0.0.1:")
    finally:
        taken.close()
    assert len(calls) == 2
    assert b"address already in use" in (tmp_path / "s3" / "server.log").read_bytes().lower()


@_marks(needs_weed)
def test_the_experiment_runs_on_its_own_object_store_and_a_users_bucket(
    tmp_path: Path, sample: Path, monkeypatch
) -> None:
    """Two object-store tiers in one run: SeaweedFS started by the tier's own run behind
    a 1 ms link, and a "user's own" bucket given by endpoint (a SeaweedFS server standing
    in, credentials from the environment)."""
    import obstore

    from conftest import local_config, snakemake

    work = tmp_path / "run"
    work.mkdir()
    with objectstore.seaweedfs(tmp_path / "users-server") as users:
        for key, value in (
            ("AWS_ACCESS_KEY_ID", users.access_key),
            ("AWS_SECRET_ACCESS_KEY", users.secret_key),
        ):
            monkeypatch.setenv(key, value)
        obstore.put(objectstore.s3_store(users, "my-bucket"), "hello", b"x")  # the bucket
        config = local_config(
            work,
            sample,
            ("raw", "png", "lmdb"),
            n_images=100,
            cutoffs=[10, 100],
            repeats=2,
            caches=["cold"],
            orders=["random"],
            latency_samples=20,
            tiers={
                "s3-own": {"kind": "s3", "latency_ms": 1, "bandwidth_mbit": 1000, "cutoffs": [100]},
                "s3-mine": {
                    "kind": "s3",
                    "endpoint": users.url,
                    "bucket": "my-bucket",
                    "prefix": "bench/run1",
                    "cutoffs": [100],
                },
            },
        )
        snakemake(work, "results/tables/tiers.md", "--cores", "2", "--configfile", str(config))
        mine = [
            item["path"]
            for batch in obstore.list(objectstore.s3_store(users, "my-bucket"), "bench/run1/")
            for item in batch
        ]
    results = work / "results"
    for name in ("s3-own", "s3-mine"):
        with open(results / "tiers" / name / "tables" / "read.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {r["format"] for r in rows} == {"raw", "png", "lmdb"}
        ways = {r["format"]: r["remote_way"] for r in rows}
        assert ways == {"raw": "range", "png": "key", "lmdb": "staged"}
        assert all(float(r["requests"]) >= 1 and float(r["images_per_s"]) > 0 for r in rows)
        described = json.loads((results / "tiers" / name / "tier.json").read_text())
        assert described["kind"] == "s3" and described["object_store"]["measured"]["probes"] == 7
    own = json.loads((results / "tiers/s3-own/tier.json").read_text())["object_store"]
    assert own["endpoint"] == "SeaweedFS started by storebench" and own["server_cpu_s"] > 0
    # the run's own server stopped with its job; its data stayed under results/
    assert (results / "tiers/s3-own/server/data").is_dir()
    # the user's bucket holds the three stores under the prefix, each with its manifest
    assert sum(name.endswith("/manifest.json") for name in mine) == 3
    # cold reads on the user's bucket: nothing here can evict its server's cache
    with open(results / "tiers/s3-mine/tables/read.csv", newline="") as handle:
        assert {r["cache"] for r in csv.DictReader(handle)} == {tables.NOT_VERIFIED}
    # no secret in anything the run wrote
    for path in results.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".md", ".log", ".yaml", ".rst"):
            text = path.read_text(errors="replace")
            assert users.secret_key not in text, path
    text = (results / "tables/tiers.md").read_text()
    assert "| local | s3-mine | s3-own |" in text or "| local | s3-own | s3-mine |" in text


def _row(tier: str, fmt: str, way: str, requests: float) -> dict[str, Any]:
    """A tiers-table row of a cold shuffled read of 1,000 images."""
    return {
        "tier": tier,
        "format": fmt,
        "n": 1000,
        "measurement": "read",
        "cache": "cold",
        "order": "random",
        "remote_way": way,
        "requests": requests,
        "bytes_down": 3.2e6,
    }


def test_the_tiers_table_counts_requests_and_prices_them_per_million_images() -> None:
    from storebench.present import tiers as tier_tables

    rows = [_row("s3-wan", "png", "key", 1001), _row("s3-wan", "raw", "range", 4)]
    rows.append(_row("local", "png", "", math.nan))  # a local read: no requests, no line
    lines = tier_tables.requests_table(rows, 1000, {"s3-wan": 0.0004})
    text = "\n".join(lines)
    # PNG: one request per image (and the labels): 1,001 per 1,000; a million: $0.40
    assert "| s3-wan | png | key | 1,001 | 3.20 | 1,001.0 | $0.40 |" in text
    assert "| s3-wan | raw | range | 4 | 3.20 | 4.0 | $0.00 |" in text
    assert "| local |" not in text and "s3-wan: $0.0004" in text
    assert tier_tables.requests_table(rows[2:], 1000, {}) == []


def test_an_unreachable_bucket_stops_the_workflow_before_any_job(
    tmp_path: Path, monkeypatch
) -> None:
    pytest.importorskip("obstore")
    from conftest import snakemake, write_config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    port = objectstore.free_ports(1)[0]
    tier = {"kind": "s3", "endpoint": f"http://127.0.0.1:{port}", "bucket": "mine"}
    config = write_config(tmp_path, tiers={"s3-mine": tier})
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "storebench:" in line]
    assert len(lines) == 1
    assert lines[0].startswith(
        f"storebench: error: config.yaml: tier s3-mine: http://127.0.0.1:{port}, bucket 'mine' "
        "is unreachable; check"
    )
    assert not (tmp_path / "results").exists()


def test_a_pick_that_changes_on_an_object_store_tier_says_how_each_pick_was_read() -> None:
    from storebench.present import tiers as tier_tables
    from storebench.present.verdict import Pick

    ways = tier_tables.read_ways(
        [
            _row("s3-wan", "tfrecord", "stream", 2),
            _row("s3-wan", "lmdb", "staged", 3),
            _row("local", "lmdb", "", math.nan),
        ],
        1000,
    )
    assert ways == {
        "s3-wan": {"tfrecord": "read by stream, 2 requests", "lmdb": "read by staged, 3 requests"}
    }
    need = "the fastest reads"
    picks = {
        need: {"local": Pick(need, ("lmdb",), "1.2x"), "s3-wan": Pick(need, ("tfrecord",), "3x")}
    }
    assert tier_tables.pick_changes(picks, ["local", "s3-wan"], ways) == [
        "The pick for the fastest reads changes between tiers: lmdb on local; tfrecord on "
        "s3-wan (tfrecord: read by stream, 2 requests)."
    ]
    # the same picks on both tiers: no line, whatever the reasons
    same = {need: {"local": Pick(need, ("lmdb",), "1.2x"), "s3-wan": Pick(need, ("lmdb",), "3x")}}
    assert tier_tables.pick_changes(same, ["local", "s3-wan"], ways) == []
