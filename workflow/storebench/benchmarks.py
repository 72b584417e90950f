"""Benchmarks that print what this machine does (not tests): the two traps, run drift,
how steady the host is.

``python -m storebench benchmark memory`` prints each job's peak memory per
stage and n, from the run's results (every result records its job's peak RSS).

``python -m storebench benchmark traps`` measures
* how much slower file creation and a PNG store get right after ~100,000
  small files were deleted (ext4), and whether the create-latency probe sees it;
* what allocating a fresh output array adds to a whole-dataset read, compared
  with the preallocated, pre-touched buffer storebench reads into.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from storebench import datasetfile, host, measure
from storebench.errors import StorebenchError
from storebench.formats import make_format
from storebench.present import tables


def _store_time(fmt: Any, images: np.ndarray, labels: np.ndarray, parent: Path) -> float:
    target = Path(tempfile.mkdtemp(prefix="store.", dir=parent))
    host.sync_filesystem(target)
    start = time.perf_counter()
    fmt.write(target, images, labels)
    return time.perf_counter() - start


def deletion_trap(
    work: Path, images: np.ndarray, labels: np.ndarray, files: int = 100_000, rounds: int = 3
) -> None:
    """Print create latency and PNG store time when quiet and right after a mass delete."""
    png = make_format("png", {"kind": "png"})
    work.mkdir(parents=True, exist_ok=True)
    print(f"PNG store of {len(images)} images; {files} small files deleted before 'after delete'")
    print(f"{'round':>5} {'state':<13} {'probe us':>9} {'store s':>8}")
    quiet, after = [], []
    for round_ in range(rounds):
        probe = host.create_latency_us(work)
        quiet.append(_store_time(png, images, labels, work))
        print(f"{round_:>5} {'quiet':<13} {probe:>9.1f} {quiet[-1]:>8.3f}")
        victim = work / "victim"
        victim.mkdir()
        for i in range(files):
            (victim / f"{i}.png").write_bytes(b"x" * 2300)
        host.sync_filesystem(victim)
        shutil.rmtree(victim)
        probe = host.create_latency_us(work)
        after.append(_store_time(png, images, labels, work))
        print(f"{round_:>5} {'after delete':<13} {probe:>9.1f} {after[-1]:>8.3f}")
        time.sleep(5)
    ratio = statistics.median(after) / statistics.median(quiet)
    print(
        f"median store: quiet {statistics.median(quiet):.3f} s, after delete "
        f"{statistics.median(after):.3f} s, ratio {ratio:.2f}"
    )


def allocation_trap(images: np.ndarray, labels: np.ndarray, work: Path, repeats: int = 5) -> None:
    """Print HDF5 whole-dataset read time into a fresh array vs a pre-touched buffer."""
    hdf5 = make_format("hdf5", {"kind": "hdf5"})
    store = Path(tempfile.mkdtemp(prefix="hdf5.", dir=work))
    hdf5.write(store, images, labels)
    indices = np.arange(len(images))
    fresh, touched = [], []
    buffer, label_buffer = np.empty_like(images), np.empty_like(labels)
    buffer.fill(0)
    for _ in range(repeats):
        out, out_labels = np.empty_like(images), np.empty_like(labels)
        start = time.perf_counter()
        with hdf5.open(store) as reader:
            reader.read_into(indices, out, out_labels)
        fresh.append(time.perf_counter() - start)
        del out
        start = time.perf_counter()
        with hdf5.open(store) as reader:
            reader.read_into(indices, buffer, label_buffer)
        touched.append(time.perf_counter() - start)
    print(
        f"HDF5 read of {len(images)} images ({images.nbytes / 1e6:.0f} MB), warm cache, "
        f"median of {repeats}:"
    )
    print(
        f"  into a freshly allocated array: {statistics.median(fresh):.3f} s "
        f"(all: {', '.join(f'{t:.3f}' for t in fresh)})"
    )
    print(
        f"  into a pre-touched buffer:      {statistics.median(touched):.3f} s "
        f"(all: {', '.join(f'{t:.3f}' for t in touched)})"
    )
    print(f"  ratio {statistics.median(fresh) / statistics.median(touched):.2f}")


def host_stability(seconds: float, interval_s: float = 0.05) -> None:
    """Print how much this machine's speed drifts while idle, over time windows.

    Every ``interval_s`` it times a fixed pure-Python loop (CPU-bound, like a
    per-image reader loop) and a 30 MB copy (memory-bound), then prints, for
    windows of 1 to 30 s, the spread between the windows' medians. A median
    cannot be reproduced more tightly than the spread of the windows it is
    measured in.
    """
    source = np.ones(30_000_000 // 8)
    target = np.ones_like(source)
    stamps: list[float] = []
    loop_s: list[float] = []
    copy_s: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        total = 0
        for i in range(100_000):
            total += i
        middle = time.perf_counter()
        target[:] = source
        stamps.append(time.monotonic())
        loop_s.append(middle - start)
        copy_s.append(time.perf_counter() - middle)
        time.sleep(interval_s)
    t = np.asarray(stamps) - stamps[0]
    print(f"{len(t)} probes over {t[-1]:.0f} s")
    print(f"{'probe':<22} {'window':>6} {'windows':>7} {'max/min':>8} {'p90/p10':>8}")
    for name, values in (("python loop (CPU)", loop_s), ("30 MB copy (memory)", copy_s)):
        array = np.asarray(values)
        for window in (1, 3, 10, 30):
            bins = (t // window).astype(int)
            medians = np.array([np.median(array[bins == b]) for b in np.unique(bins)])
            p10, p90 = np.percentile(medians, [10, 90])
            print(
                f"{name:<22} {window:>5}s {len(medians):>7} "
                f"{medians.max() / medians.min():>8.2f} {p90 / p10:>8.2f}"
            )
        p10, p50, p90 = np.percentile(array, [10, 50, 90]) * 1e3
        print(f"{name:<22} single probes (ms): p10 {p10:.2f}, median {p50:.2f}, p90 {p90:.2f}")


def compare(first: Path, second: Path, min_n: int, columns: Sequence[str] = ("median",)) -> None:
    """Print how far each measurement's median moved between two runs' tables."""

    def key(row: dict[str, Any]) -> tuple:
        return tuple(row[c] for c in ("format", "n", "measurement", "cache", "order"))

    a = {key(r): r for r in tables.read_table(first)}
    b = {key(r): r for r in tables.read_table(second)}
    rows = []
    for k in sorted(a.keys() & b.keys(), key=str):
        if k[1] < min_n:
            continue
        for column in columns:
            ratio = b[k][column] / a[k][column]
            rows.append((abs(ratio - 1), k, a[k][column], b[k][column], ratio))
    print(
        f"{'format':<9} {'n':>7} {'measurement':<14} {'cache':<6} {'order':<10} "
        f"{'run 1':>9} {'run 2':>9} {'ratio':>6}"
    )
    for _, k, x, y, ratio in sorted(rows, key=lambda r: -r[0]):
        print(
            f"{k[0]:<9} {k[1]:>7} {k[2]:<14} {k[3]:<6} {k[4]:<10} {x:>9.4g} {y:>9.4g} {ratio:>6.3f}"
        )
    worst = max(rows, key=lambda r: r[0])
    within = sum(1 for r in rows if r[0] <= 0.10)
    print(f"{within} of {len(rows)} medians within 10%; worst: {worst[1]} ratio {worst[4]:.3f}")


def _median(
    rows: list[dict[str, Any]], fmt: str, n: int, measurement: str, cache: str = "", order: str = ""
) -> float | None:
    for row in rows:
        if (row["format"], row["n"], row["measurement"], row["cache"], row["order"]) == (
            fmt,
            n,
            measurement,
            cache,
            order,
        ):
            return float(row["median"])
    return None


def png_decode_rate(store: Path, count: int = 5000, repeats: int = 5) -> float:
    """Images per second one core decodes from in-memory PNG bytes to an array (median)."""
    import io

    from PIL import Image

    blobs = [(store / f"{i}.png").read_bytes() for i in range(count)]
    with Image.open(io.BytesIO(blobs[0])) as first:
        out = np.empty((first.height, first.width, len(first.getbands())), np.uint8)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for blob in blobs:
            with Image.open(io.BytesIO(blob)) as image:
                out[:] = np.asarray(image)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def floor(results_dir: Path, floor_format: str) -> None:
    """Print each format at the largest n, and as a ratio to the raw floor of the same run."""
    tables_dir = results_dir / "tables"
    store = tables.read_table(tables_dir / "store.csv")
    read = tables.read_table(tables_dir / "read.csv")
    usage = {(r["format"], r["n"]): r for r in tables.read_table(tables_dir / "usage.csv")}
    n = max(r["n"] for r in read)
    formats = list(dict.fromkeys(r["format"] for r in read))
    columns = {
        "store s": lambda f: _median(store, f, n, "store"),
        "warm seq read s": lambda f: _median(read, f, n, "read", "warm", "sequential"),
        "cold random read s": lambda f: _median(read, f, n, "read", "cold", "random"),
        "disk MiB": lambda f: usage[(f, n)]["allocated_bytes"] / 2**20,
    }
    values = {f: {c: get(f) for c, get in columns.items()} for f in formats}
    base = values.get(floor_format)
    if base is None:
        raise StorebenchError(f"no format {floor_format!r} in {tables_dir}; pass --floor NAME")
    print(f"n = {n:,}; ratio = value / {floor_format}'s value in the same run\n")
    print("| format | " + " | ".join(f"{c} | ratio" for c in columns) + " |")
    print("|---|" + "---|---|" * len(columns))
    for fmt in formats:
        cells = []
        for column in columns:
            value, reference = values[fmt][column], base[column]
            ratio = value / reference if value is not None and reference else None
            cells.append(f"{value:.4g}" if value is not None else "-")
            cells.append(f"{ratio:.2f}" if ratio is not None else "-")
        print(f"| {fmt} | " + " | ".join(cells) + " |")
    for fmt in formats:
        folder = results_dir / "stores" / fmt / str(n)
        if (folder / "0.png").exists():
            rate = png_decode_rate(folder)
            read_s = values[fmt]["warm seq read s"]
            ratio = read_s / (n / rate)
            print(
                f"\n{fmt}: Pillow decodes {rate:,.0f} images/s on one core (in memory); "
                f"the warm sequential read of {n:,} took {read_s:.3g} s = "
                f"{n / read_s:,.0f} images/s, {ratio:.2f}x the decode time"
            )


def interleaved(
    results_dir: Path,
    formats: dict[str, Any],
    names: Sequence[str],
    n: int,
    rounds: int,
    floor_format: str,
    seed: int = 0,
) -> None:
    """Warm sequential reads of n images, every format once per round in a shuffled order.

    Each sample is the workflow's own read (``measure.measure_read``: one untimed
    warm-up, one timed read into a pre-touched buffer, validated). A format's
    ratio to the floor is taken per round, against the floor's sample of the same
    round, so both saw the host in the same state; the median of those ratios is
    what a noisy host cannot move much.
    """
    if floor_format not in names:
        names = [floor_format, *names]
    unknown = [name for name in names if name not in formats]
    if unknown:
        raise StorebenchError(
            f"no format {unknown[0]!r} in the config; choose from {list(formats)}"
        )

    images, labels = datasetfile.load_dataset(
        results_dir / "dataset/images.npy", results_dir / "dataset/labels.npy"
    )
    images, labels = np.array(images[:n]), np.array(labels[:n])
    indices = measure.read_indices(n, "sequential", seed)
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in rng.permutation(names):
            store = results_dir / "stores" / name / str(n)
            result = measure.measure_read(
                formats[name], store, images, labels, indices, "warm", repeats=1
            )
            times[name].append(result["samples"]["read_s"][0])
    floor_times = np.array(times[floor_format])
    print(
        f"n = {n:,}, warm sequential read, {rounds} rounds; ratio = the format's time / "
        f"{floor_format}'s time in the same round\n"
    )
    print("| format | median s | min s | max s | median ratio | p10 ratio | p90 ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        t = np.array(times[name])
        ratio = t / floor_times
        p10, p50, p90 = np.percentile(ratio, [10, 50, 90])
        print(
            f"| {name} | {np.median(t):.4g} | {t.min():.4g} | {t.max():.4g} | "
            f"{p50:.2f} | {p10:.2f} | {p90:.2f} |"
        )


def read_buffer(side: int, n: int, rounds: int, work: Path, seed: int = 0) -> None:
    """Print an HDF5 shuffled read of ``n`` images of ``side`` px, warm, with the buffer
    its scattered reads go through made inside every read at 1,024 images (the reader
    before 2026-12-02: 192 MiB at 256 px, allocated and filled on the clock) against the
    reused one of at most 3 MiB, in pairs whose order alternates, as the ratio old/new
    per pair: its median and the order-statistic interval of that median."""
    from storebench import stats
    from storebench.formats import base, hdf5

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    fmt = make_format("hdf5", {"kind": "hdf5"})
    store = Path(tempfile.mkdtemp(prefix="read-buffer.", dir=work))
    try:
        fmt.write(store, images, labels)
        indices = rng.permutation(n)
        out = np.zeros_like(images), np.zeros_like(labels)
        out[0].fill(1)  # the caller's buffer, touched, as the workflow's is

        def read(old: bool) -> float:
            bytes_per_block = hdf5.BLOCK_BYTES
            if old:
                hdf5.BLOCK_BYTES = 1024 * images[0].nbytes
                base.reused_buffers().clear()  # made inside the read, as each reader did
            try:
                start = time.perf_counter()
                with fmt.open(store) as reader:
                    reader.read_into(indices, *out)
                return time.perf_counter() - start
            finally:
                hdf5.BLOCK_BYTES = bytes_per_block
                if old:
                    base.reused_buffers().clear()

        read(False)  # the warm-up read makes the reused buffer, off the clock
        ratios, times = [], {True: [], False: []}
        for k in range(rounds):
            first = bool(k % 2)
            pair = {first: read(first), not first: read(not first)}
            times[True].append(pair[True])
            times[False].append(pair[False])
            ratios.append(pair[True] / pair[False])
        found = stats.median_interval(ratios)
        print(
            f"HDF5, {n:,} images of {side} px, warm shuffled read, {rounds} pairs: "
            f"buffer made per read {1e3 * np.median(times[True]):.1f} ms, reused "
            f"{1e3 * np.median(times[False]):.1f} ms (medians); old/new "
            f"{found['median']:.2f}x [{found['lo']:.2f}-{found['hi']:.2f}, "
            f"{found['coverage']:.1%}]"
        )
        assert np.array_equal(out[0], images[indices]) and np.array_equal(out[1], labels[indices])
    finally:
        shutil.rmtree(store)


def memory(results_dir: Path) -> None:
    """Print the peak memory of every measuring job, per stage and n, and per format.

    ``peak RSS`` is the kernel's high-water mark of the job's process
    (``ru_maxrss``); ``workers' peak RSS`` that of its largest child (parallel
    readers, DataLoader workers; tens of MiB are helper processes). ``anon`` and
    ``file`` are the largest anonymous and file-backed resident sizes sampled
    where a job holds the most (a loaded chunk next to a read one): anonymous
    memory is what the job allocated; file-backed is a memory-mapped store (LMDB,
    npy, TFRecord), page cache the kernel reclaims.
    """
    from storebench import results

    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for path in sorted(Path(results_dir, "measurements").glob("*/*/*.json")) + sorted(
        Path(results_dir, "measurements").glob("*/*/*/*.json")
    ):
        result = results.read_json(path)
        if "memory" not in result:
            continue
        stage = path.relative_to(Path(results_dir, "measurements")).parts[0]
        rows.setdefault((stage, int(result["n"])), []).append(result)
    if not rows:
        raise StorebenchError(f"no results with a memory record under {results_dir}/measurements")
    print("Peak memory per job (MiB), the largest over the jobs of each stage and n\n")
    print(
        "| stage | n | jobs | peak RSS | anon | file | workers' peak RSS | workers' anon / file "
        "| largest RSS: format |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (stage, n), found in sorted(rows.items()):
        memo = [r["memory"] for r in found]
        workers = [r["worker_memory"] for r in found if r.get("worker_memory")]
        top = max(found, key=lambda r: r["memory"]["peak_rss_mb"])
        split = (
            (
                f"{max(w['sampled_anon_mb'] for w in workers):,.0f} / "
                f"{max(w['sampled_file_mb'] for w in workers):,.0f}"
            )
            if workers
            else "-"
        )
        print(
            f"| {stage} | {n:,} | {len(found)} | {max(m['peak_rss_mb'] for m in memo):,.0f} | "
            f"{max(m['sampled_anon_mb'] for m in memo):,.0f} | "
            f"{max(m['sampled_file_mb'] for m in memo):,.0f} | "
            f"{max(m['peak_child_rss_mb'] for m in memo):,.0f} | {split} | "
            f"{top['format']} |"
        )
    largest = max(n for _, n in rows)
    print(f"\nPer format at n = {largest:,} (largest over its jobs): peak RSS / anon / file\n")
    stages = sorted({stage for stage, n in rows if n == largest})
    print("| format | " + " | ".join(stages) + " |")
    print("|---|" + "---|" * len(stages))
    formats = sorted({r["format"] for (_, n), found in rows.items() if n == largest for r in found})
    for name in formats:
        cells = []
        for stage in stages:
            memo = [r["memory"] for r in rows.get((stage, largest), []) if r["format"] == name]
            cells.append(
                " / ".join(
                    f"{max(m[k] for m in memo):,.0f}"
                    for k in ("peak_rss_mb", "sampled_anon_mb", "sampled_file_mb")
                )
                if memo
                else "-"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


LINKS = {
    "direct": (0.0, 0.0),
    "s3-lan": (1.0, 1000.0),  # latency ms, bandwidth Mbit/s
    "s3-wan": (30.0, 150.0),
}


def link(work: Path, repeats: int = 15) -> None:
    """Print what each emulated link costs a client of the S3 server storebench starts
    (:mod:`storebench.objectstore` behind :mod:`storebench.linkproxy`): the null
    request's time to first byte, a 4 MiB object's throughput and 100 gets of 3 KiB
    objects (a CIFAR-10 PNG each), each the median of ``repeats`` with the
    order-statistic interval of that median, and the requests the link counted."""
    import obstore

    from storebench import linkproxy, objectstore, stats

    folder = Path(tempfile.mkdtemp(prefix="link.", dir=work))
    try:
        started = time.perf_counter()
        with objectstore.seaweedfs(folder / "s3") as endpoint:
            print(f"SeaweedFS started in {time.perf_counter() - started:.1f} s")
            host, port = endpoint.url.removeprefix("http://").split(":")
            big, small = bytes(4 << 20), [bytes([i]) * 3072 for i in range(100)]
            for name, (latency_ms, mbit) in LINKS.items():
                with linkproxy.LinkProxy(
                    (host, int(port)), linkproxy.Link.of(latency_ms, mbit)
                ) as proxy:
                    url = f"http://127.0.0.1:{proxy.address[1]}"
                    store = objectstore.s3_store(endpoint, "bench", url)
                    obstore.put(store, f"{name}/big", big)
                    for i, payload in enumerate(small):
                        obstore.put(store, f"{name}/{i}", payload)
                    before = proxy.counts
                    null, rate, gets = [], [], []
                    for _ in range(repeats):
                        null.append(linkproxy.null_request_s(proxy.address))
                        start = time.perf_counter()
                        got = obstore.get(store, f"{name}/big").bytes()
                        rate.append(len(got) / (time.perf_counter() - start) / 1e6)
                        start = time.perf_counter()
                        for i in range(len(small)):
                            obstore.get(store, f"{name}/{i}").bytes()
                        gets.append(len(small) / (time.perf_counter() - start))
                    after = proxy.counts
                requests = after["requests"] - before["requests"]

                def shown(values: list[float], unit: str, scale: float = 1.0) -> str:
                    found = stats.median_interval([v * scale for v in values])
                    return (
                        f"{found['median']:.4g} {unit} [{found['lo']:.4g}-{found['hi']:.4g}, "
                        f"{found['coverage']:.0%}]"
                    )

                print(
                    f"{name} ({latency_ms:g} ms, {mbit:g} Mbit/s): null request "
                    f"{shown(null, 'ms', 1e3)}; 4 MiB get {shown(rate, 'MB/s')}; "
                    f"3 KiB gets {shown(gets, '/s')}; {requests} requests counted "
                    f"({repeats * (2 + len(small))} made)"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
