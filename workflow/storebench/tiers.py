"""Storage tiers: the experiment again where the data lives when people train from it.

The run itself is the ``local`` tier. Every tier of config ``tiers`` runs the whole
experiment again (the same Snakefile, a derived config: :func:`sub_config`) in a folder
of its own, started by one job of the outer run that holds every core, so no timed job
of either run overlaps another, and the floor is measured on the same tier as the
formats it is paired with. Its tables, verdict and a description of where it ran
(``tier.json``: the kind, the path, the file system type) are copied back into
``results/tiers/{name}/``, and the tiers table puts the tiers side by side.

``kind: directory`` runs the experiment in ``path/storebench/{name}/`` on a mount the
user names (NFS, Lustre, a FUSE file system): the dataset, stores and scratch all live
there, as they would for training from it. Cold reads evict there as everywhere (the
kernel drops a file's cached pages; a network or FUSE file system may keep its own
cache, which the residency check cannot see: ``tier.json`` names the file system so the
tables say which).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from storebench import results, subrun
from storebench.errors import StorebenchError

# What a tier's run must make, and what is copied back (paths below its results/).
COPIED = (
    "tables/store.csv",
    "tables/read.csv",
    "tables/usage.csv",
    "tables/latency.csv",
    "tables/summary.md",
    "tables/verdict.rst",
    "environment.json",
)
TARGETS = ("results/tables/summary.md",)
# What the outer run's job declares (the rest of COPIED when the run made it).
DECLARED = (
    "tier.json",
    "tables/store.csv",
    "tables/read.csv",
    "tables/usage.csv",
    "tables/verdict.rst",
)
# The tables the tiers table is made from, per tier.
TABLES = ("store", "read", "usage")
LOCAL = "local"
S3 = "s3"
# US dollars per 1,000 GET requests: Amazon S3 Standard, us-east-1 (aws.amazon.com/s3/pricing,
# 2026); a tier sets its own with price_per_1000_requests.
GET_PRICE = 0.0004
OBJECT_STORE_LATENCY_SAMPLES = 100
OBJECT_STORE_LATENCY_N = 1000


def work_folder(name: str, spec: Mapping[str, Any], out: Path) -> Path:
    """Where a tier's run works (its results/ is below it): on the mount of a directory
    tier; for an object-store tier, on local disk in ``out``/run (its stores' local
    copies, the dataset and its scratch: only the objects are on the tier)."""
    if spec["kind"] == "directory":
        return Path(spec["path"]).resolve() / "storebench" / name
    if spec["kind"] == S3:
        return Path(out).resolve() / "run"
    raise StorebenchError(f"tiers.{name}.kind: {spec['kind']!r} is not a known tier kind")


def check(config: Mapping[str, Any]) -> None:
    """One line naming the tier and the fix for a tier that cannot run: the name of the
    run's own tier, formats or cutoffs the run does not have, a directory that is not
    there or cannot be written."""
    formats, cutoffs = config["formats"], config["cutoffs"]
    for name, spec in (config.get("tiers") or {}).items():
        if name == LOCAL:
            raise StorebenchError(
                f"tiers.{name}: {LOCAL!r} is the run itself (its own tables); name the "
                "tier after where it stores (e.g. nfs, lustre, s3-lan)"
            )
        unknown = [f for f in spec.get("formats") or [] if f not in formats]
        if unknown:
            raise StorebenchError(
                f"tiers.{name}.formats: {unknown} are not in formats {list(formats)}"
            )
        unknown = [c for c in spec.get("cutoffs") or [] if c not in cutoffs]
        if unknown:
            raise StorebenchError(
                f"tiers.{name}.cutoffs: {unknown} are not in cutoffs {cutoffs}; a tier "
                "measures some of the run's cutoffs"
            )
        for key in ("caches", "orders"):
            unknown = [v for v in spec.get(key) or [] if v not in config[key]]
            if unknown:
                raise StorebenchError(
                    f"tiers.{name}.{key}: {unknown} are not in {key} {config[key]}; a tier "
                    f"measures some of the run's {key}"
                )
        if spec["kind"] == "directory":
            if not spec.get("path"):
                raise StorebenchError(f"tiers.{name}.path: a directory tier needs the mount's path")
            _check_directory(name, Path(spec["path"]))
        elif spec["kind"] == S3:
            _check_s3(name, spec)


def _check_directory(name: str, path: Path) -> None:
    key = f"tiers.{name}.path"
    if not path.is_absolute():
        raise StorebenchError(f"{key}: {str(path)!r} is relative; give the mount's full path")
    if not path.is_dir():
        raise StorebenchError(
            f"{key}: {path} is not a directory; mount it (or create it) or fix the path"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorebenchError(
            f"{key}: {path} cannot be written by this user; grant write access or pick "
            "a folder you own on that mount"
        )


def _check_s3(name: str, spec: Mapping[str, Any]) -> None:
    """An object-store tier: SeaweedFS installed when storebench starts the server; a
    user's endpoint reachable, its credentials taken and its bucket there."""
    from storebench import objectstore

    extra = sorted(set(spec) & {"path"})
    if extra:
        raise StorebenchError(f"tiers.{name}: {extra[0]} is for kind directory, not {S3}")
    url = spec.get("endpoint")
    if not url:
        objectstore.weed_binary()
        return
    if not url.startswith(("http://", "https://")):
        raise StorebenchError(
            f"tiers.{name}.endpoint: {url!r} is not a URL; give it as http://host:port or "
            "https://host"
        )
    if url.startswith("https://") and (spec.get("latency_ms") or spec.get("bandwidth_mbit")):
        raise StorebenchError(
            f"tiers.{name}: an emulated link (latency_ms, bandwidth_mbit) needs an http:// "
            "endpoint; drop them to measure the https endpoint's own link"
        )
    objectstore.check(_user_endpoint(name, url), bucket(name, spec), name)


def _user_endpoint(name: str, url: str) -> Any:
    """A user's endpoint with the credentials of the environment."""
    from storebench import objectstore

    return objectstore.environment_endpoint(url, f"tier {name}")


def bucket(name: str, spec: Mapping[str, Any]) -> str:
    return spec.get("bucket") or "storebench"


def sub_config(config: Mapping[str, Any], name: str, archive: str | None) -> dict[str, Any]:
    """The config of one tier's run: the outer config with no tiers and no size sweep,
    the tier's formats (the floor always kept) and cutoffs, and the dataset read from
    the outer run's archive or folder (absolute paths: the run works elsewhere)."""
    spec = config["tiers"][name]
    sub = subrun.derived(config, archive, spec.get("formats"))
    cutoffs = spec.get("cutoffs") or sub["cutoffs"]
    sub["cutoffs"] = list(cutoffs)
    sub["n_images"] = max(cutoffs)
    for key in ("caches", "orders"):
        sub[key] = list(spec.get(key) or sub[key])
    for section in ("parallel", "dataloader", "training"):
        part = sub.get(section)
        if isinstance(part, dict):
            # not on an object-store tier yet: readers in worker processes (a forked
            # process cannot use its parent's S3 client); the training loop's threads can
            kept = part.get("cutoffs") or []
            if spec["kind"] == S3 and section != "training":
                kept = []
            part["cutoffs"] = [c for c in kept if c in cutoffs]
    if spec["kind"] == S3 and isinstance(sub.get("training"), dict):
        sub["training"]["processes"] = []
    if spec["kind"] == S3:
        # a single-image read that opens the store each time stages a whole LMDB or
        # SQLite store per image from an object store: fewer samples keep it minutes
        sub["latency_samples"] = min(sub["latency_samples"], OBJECT_STORE_LATENCY_SAMPLES)
        # ... from the smallest store of at least 1,000 images, not the largest: staging
        # 100,000 images a hundred times over a 150 Mbit link takes hours
        sub["latency_n"] = min(
            (c for c in cutoffs if c >= OBJECT_STORE_LATENCY_N), default=max(cutoffs)
        )
    elif sub.get("latency_n") not in cutoffs:
        sub["latency_n"] = None  # the tier's largest
    return sub


def filesystem(path: Path) -> dict[str, str]:
    """The mount that holds ``path``: its mount point, file system type and source
    (from /proc/self/mounts; the longest mount point that is a prefix of it)."""
    path = Path(path).resolve()
    found = {"mount": "", "type": "unknown", "source": ""}
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return found
    best = -1
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].encode().decode("unicode_escape")
        if (path == Path(mount) or Path(mount) in path.parents) and len(mount) > best:
            best = len(mount)
            found = {"mount": mount, "type": fields[2], "source": fields[0]}
    return found


def describe(name: str, spec: Mapping[str, Any], work: Path) -> dict[str, Any]:
    """What ``tier.json`` says of a tier: its name, kind, where its run worked and the
    file system there."""
    return {
        "tier": name,
        "kind": spec["kind"],
        "work": str(work),
        "filesystem": filesystem(work),
    }


def where(described: Mapping[str, Any]) -> str:
    """Where a tier ran, in words: its file system type and folder; for an object-store
    tier, the store, the link set and the link measured."""
    fs = described.get("filesystem") or {}
    store = described.get("object_store")
    if not store:
        return f"{fs.get('type', 'unknown')} at {described.get('work', '?')}"
    measured = store.get("measured") or {}
    request, rate = measured.get("request_ms") or {}, measured.get("get_mbit_s") or {}
    link = (
        f"a link of {store.get('latency_ms', 0):g} ms and {store.get('bandwidth_mbit', 0):g} Mbit/s"
        if store.get("latency_ms") or store.get("bandwidth_mbit")
        else "no emulated link"
    )
    found = (
        f"; measured: {request['median']:.3g} ms to a small object's first byte "
        f"[{request['lo']:.3g}-{request['hi']:.3g}], {rate['median']:.3g} Mbit/s "
        f"[{rate['lo']:.3g}-{rate['hi']:.3g}] (medians of {measured.get('probes')}, "
        f"{request.get('coverage', 0):.0%} intervals)"
        if request and rate
        else ""
    )
    return f"S3 bucket {store.get('bucket')!r} on {store.get('endpoint')}, through {link}{found}"


def run(
    name: str,
    spec: Mapping[str, Any],
    config: Mapping[str, Any],
    out: Path,
    cores: int,
    snakefile: Path,
    log: Path,
) -> None:
    """Run the experiment on tier ``name`` (``spec``: its entry in config ``tiers``;
    ``config``: its run's own, :func:`sub_config`) and copy its tables, verdict and
    environment into ``out`` with ``tier.json``."""
    out = Path(out)
    work = work_folder(name, spec, out)
    described = describe(name, spec, work)
    if spec["kind"] == S3:
        if not spec.get("endpoint") and not (out / "server").exists():
            # a server of ours whose data is gone: the run's stores point at no objects
            shutil.rmtree(work / "results" / "stores", ignore_errors=True)
        with object_store(name, spec, out) as (place, env):
            described["object_store"] = {
                "endpoint": spec.get("endpoint") or "SeaweedFS started by storebench",
                "bucket": place.bucket,
                "prefix": place.prefix,
                "latency_ms": spec.get("latency_ms", 0),
                "bandwidth_mbit": spec.get("bandwidth_mbit", 0),
                "price_per_1000_requests": spec.get("price_per_1000_requests", GET_PRICE),
                "measured": place.link,
            }
            cpu = place.traffic().get("server_cpu_s")
            subrun.run(f"on tier {name}", config, work, TARGETS, cores, snakefile, log, env)
            if cpu is not None:
                described["object_store"]["server_cpu_s"] = place.traffic()["server_cpu_s"] - cpu
    else:
        subrun.run(f"on tier {name}", config, work, TARGETS, cores, snakefile, log)
    for relative in COPIED:
        source = work / "results" / relative
        if source.exists():
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.part")
            shutil.copyfile(source, staged)
            os.replace(staged, target)
    results.write_text(json.dumps(described, indent=2) + "\n", out / "tier.json")


@contextlib.contextmanager
def object_store(
    name: str, spec: Mapping[str, Any], out: Path
) -> Iterator[tuple[Any, dict[str, str]]]:
    """The object store of tier ``name`` for the length of its run: a SeaweedFS server
    storebench starts (data in ``out``/server) or the user's endpoint, behind a link
    proxy with the tier's latency and bandwidth (an http endpoint), its link measured;
    yields the :class:`storebench.objecttier.Place` and the environment of the run's
    jobs (the place and the credentials)."""
    from storebench import linkproxy, objectstore, objecttier

    with contextlib.ExitStack() as stack:
        if spec.get("endpoint"):
            endpoint = _user_endpoint(name, spec["endpoint"])
        else:
            endpoint = stack.enter_context(objectstore.seaweedfs(Path(out) / "server"))
        url, counter = endpoint.url, 0
        if url.startswith("http://"):
            link = linkproxy.Link.of(spec.get("latency_ms", 0), spec.get("bandwidth_mbit", 0))
            proxy = stack.enter_context(linkproxy.LinkProxy(_host_port(url), link))
            url, counter = f"http://127.0.0.1:{proxy.address[1]}", proxy.count_port
        place = objecttier.Place(
            url,
            bucket(name, spec),
            (spec.get("prefix") or name).strip("/"),
            counter,
            endpoint.data,
            endpoint.pid,
        )
        env = {
            "AWS_ACCESS_KEY_ID": endpoint.access_key,
            "AWS_SECRET_ACCESS_KEY": endpoint.secret_key,
            "AWS_REGION": endpoint.region,
        }
        for key, value in env.items():  # this process's own clients (the link's probe)
            stack.enter_context(_environ(key, value))
        place = dataclasses.replace(place, link=measure_link(place))
        env[objecttier.ENV] = place.to_env()
        yield place, env


@contextlib.contextmanager
def _environ(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


PROBE_BYTES = 8 << 20
PROBES = 7


def measure_link(place: Any) -> dict[str, Any]:
    """What a client sees of the tier's link before the run: the time to the first byte
    of an object request (a 1-byte object) and the throughput of an 8 MiB get, each the
    median of :data:`PROBES` with the order-statistic interval of that median."""
    import time

    import obstore

    from storebench import stats

    location = place.location(f"probe-{os.getpid()}")
    obstore.put(location.store, location.key("small"), b"x")
    obstore.put(location.store, location.key("big"), os.urandom(PROBE_BYTES))
    first, rate = [], []
    try:
        for _ in range(PROBES):
            start = time.perf_counter()
            location.get("small")
            first.append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            location.get("big")
            rate.append(PROBE_BYTES * 8 / (time.perf_counter() - start) / 1e6)
    finally:
        obstore.delete(location.store, [location.key("small"), location.key("big")])

    def shown(values: list[float]) -> dict[str, float]:
        found = stats.median_interval(values)
        return {k: round(float(found[k]), 3) for k in ("median", "lo", "hi", "coverage")}

    return {"request_ms": shown(first), "get_mbit_s": shown(rate), "probes": PROBES}
