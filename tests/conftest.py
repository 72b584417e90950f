"""Shared fixtures: a CIFAR-10 archive in the official layout made here, the real
sample when ../shared is there, and a local HTTP server that serves either."""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from storebench.integrity import md5sum

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the slow tests (more workflow runs end to end); CI always does",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a slow test (workflow runs end to end); runs with --slow"
    )


def missing_extras(environments: bool = False) -> dict[str, str]:
    """Kinds of an optional extra whose libraries are not installed -> that extra; with
    ``environments``, kinds whose jobs run in an environment of their own -> its name."""
    from storebench.formats import available_kinds
    from storebench.provenance import package_version

    return {
        kind: (cls.environment if environments else cls.extra)
        for kind, cls in available_kinds().items()
        if (cls.environment if environments else cls.extra)
        and any(package_version(p) == "not installed" for p in cls.libraries)
    }


def _format_of(value: Any, kinds: dict[str, str]) -> str | None:
    """The kind a test parameter names: the kind, a variant named ``<kind>_...``, or a
    spec ``{"kind": ...}``."""
    if isinstance(value, dict):
        value = value.get("kind")
    if not isinstance(value, str):
        return None
    return next((k for k in kinds if value == k or value.startswith(f"{k}_")), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test of a format whose extra is not installed is skipped, naming the extra
    (failed instead where STOREBENCH_REQUIRE_EXTRAS=1, as in CI); without --slow, tests
    marked slow are skipped, with the reason."""
    missing = {} if os.environ.get("STOREBENCH_REQUIRE_EXTRAS") == "1" else missing_extras()
    elsewhere = missing_extras(environments=True)
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {}).values()
        kind = next(filter(None, (_format_of(v, missing) for v in params)), None)
        if kind:
            item.add_marker(
                pytest.mark.skip(reason=f"{kind}: pip install -e '.[{missing[kind]}]' to test it")
            )
        kind = next(filter(None, (_format_of(v, elsewhere) for v in params)), None)
        if kind:  # .ci/run runs these tests in that environment
            item.add_marker(
                pytest.mark.skip(reason=f"{kind}: runs in the {elsewhere[kind]} environment")
            )
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# The real CIFAR-10 sample (5,000 training images, official layout) beside the
# repository on the project's machines; anywhere else the tests that need it skip.
REAL_SAMPLE = ROOT.parent / "shared" / "data" / "cifar-10-sample-python.tar.gz"
REAL_SAMPLE_MD5 = "7c169e720ae84550ca63fb9379521fdd"
# The archive the tests make: as many images per batch as the real sample.
PER_BATCH = 1000
SAMPLE_TRAIN = 5 * PER_BATCH
BATCH_DIR = "cifar-10-batches-py"
LABEL_NAMES = [
    b"airplane",
    b"automobile",
    b"bird",
    b"cat",
    b"deer",
    b"dog",
    b"frog",
    b"horse",
    b"ship",
    b"truck",
]


class _Python2Pickler(pickle._Pickler):  # the pure-Python pickler, to change one opcode
    """Writes bytes as Python 2 wrote its ``str`` (BINSTRING), as in the official
    files, where Python 3's protocol 2 would call ``_codecs.encode``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def official_pickle(obj: object) -> bytes:
    """A protocol-2 pickle with the opcodes and globals of the official batches:
    bytes as BINSTRING, and numpy 1's ``numpy.core.multiarray`` where numpy 2
    names ``numpy._core.multiarray``."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def synthetic_batch(seed: int, n: int, label: bytes) -> dict[bytes, object]:
    """``n`` images that look enough like photos for PNG and gzip to compress them
    (smooth colour fields plus noise), labels cycling through all ten classes."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 3, 4, 4)).astype(np.float32)
    smooth = coarse.repeat(8, axis=2).repeat(8, axis=3)
    noisy = smooth + rng.normal(0.0, 12.0, size=smooth.shape)
    planes = np.clip(noisy, 0, 255).astype(np.uint8)  # (n, 3, 32, 32): R, G, B planes
    labels = [(seed * 7 + i) % 10 for i in range(n)]
    return {b"batch_label": label, b"labels": labels, b"data": planes.reshape(n, 3072)}


def make_archive(
    path: Path, per_batch: int = PER_BATCH, replace: dict[str, bytes] | None = None
) -> Path:
    """Write a ``cifar-10-python.tar.gz`` in the official layout: five training
    batches, a test batch, ``batches.meta`` and ``readme.html``; made-up images.
    ``replace``: member name -> bytes to put there instead (a hostile batch)."""
    members: list[tuple[str, bytes]] = [
        (
            "batches.meta",
            official_pickle(
                {b"num_cases_per_batch": per_batch, b"label_names": LABEL_NAMES, b"num_vis": 3072}
            ),
        ),
    ]
    for i in range(1, 6):
        batch = synthetic_batch(i, per_batch, f"training batch {i} of 5".encode())
        members.append((f"data_batch_{i}", official_pickle(batch)))
    members.append(
        ("test_batch", official_pickle(synthetic_batch(6, per_batch, b"testing batch 1 of 1")))
    )
    members.append(("readme.html", b'<meta HTTP-EQUIV="REFRESH" content="0">\n'))
    tmp = path.with_name(f".{path.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:  # files only, like the official archive
        for name, data in members:
            data = (replace or {}).get(name, data)
            info = tarfile.TarInfo(f"{BATCH_DIR}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)
    return path


def marked(images: np.ndarray, repeat: int) -> np.ndarray:
    """``images`` as the dataset holds their ``repeat``-th repeat (0: the originals): the
    repeat's number, little-endian, XORed into each image's first eight bytes (the first
    pixel's red, green, blue, then the next pixels')."""
    out = np.array(images, copy=True, order="C")  # reshape below is then a view
    flat = out.reshape(len(out), -1)
    for k in range(min(8, flat.shape[1])):
        flat[:, k] ^= (repeat >> (8 * k)) & 0xFF
    return out


def training_set_of(archive: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode an archive's training set the plain way, as the CIFAR-10 page describes."""
    images, labels = [], []
    with tarfile.open(archive) as tar:
        for i in range(1, 6):
            handle = tar.extractfile(f"{BATCH_DIR}/data_batch_{i}")
            batch = pickle.load(handle, encoding="bytes")  # trusted test data only
            for row, label in zip(batch[b"data"], batch[b"labels"], strict=True):
                images.append(row.reshape(3, 32, 32).transpose(1, 2, 0))
                labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.uint8)


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10 archive in the official layout, 5,000 made-up training images."""
    return make_archive(tmp_path_factory.mktemp("archive") / "cifar-10-python.tar.gz")


@pytest.fixture(scope="session")
def sample_md5(sample: Path) -> str:
    return md5sum(sample)


@pytest.fixture(scope="session")
def real_sample() -> Path:
    """The real CIFAR-10 sample in ../shared: skipped where it is not there, except
    where STOREBENCH_REQUIRE_SHARED=1 (CI) makes its absence a failure."""
    if not REAL_SAMPLE.is_file():
        message = f"{REAL_SAMPLE} is not there (the project's machines keep the real sample)"
        if os.environ.get("STOREBENCH_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return REAL_SAMPLE


@dataclass
class Server:
    """What the test server serves, how it misbehaves, and what it was asked."""

    payload: bytes = b""
    ignore_range: bool = False
    truncate_first: int | None = None  # bytes to send before dropping the first response
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""
    busy_first: list[int] = field(default_factory=list)  # statuses of the first answers
    headers: dict[str, str] = field(default_factory=dict)  # extra or replaced headers
    trickle_s: float = 0.0  # pause after every 1 KiB sent


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            header = self.headers.get("Range")
            server.ranges.append(header)
            if server.busy_first:
                self.send_response(server.busy_first.pop(0))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
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
            headers = {"Content-Length": str(len(body)), **server.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if server.trickle_s:
                try:
                    for at in range(0, len(body), 1024):
                        self.wfile.write(body[at : at + 1024])
                        self.wfile.flush()
                        time.sleep(server.trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should
                return
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


def snakemake_call(
    work: Path, args: tuple[str, ...], pythonpath: Path | None = None
) -> dict[str, Any]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return {
        "args": [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(work),
            *args,
        ],
        "env": env,
        "cwd": work,
        "text": True,
    }


def snakemake(
    work: Path, *args: str, check: bool = True, pythonpath: Path | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in ``work``, as the README does."""
    proc = subprocess.run(
        **snakemake_call(work, args, pythonpath), capture_output=True, timeout=900
    )
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_config(work: Path, **changes: object) -> Path:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for key, value in changes.items():
        config[key] = value
    # Tests take exactly `repeats` pairs per measurement: fast, and the counts are known.
    config.setdefault("sampling", {})
    if "sampling" not in changes:
        config["sampling"] = {
            "precision": 0.0,
            "max_pairs": config["repeats"],
            "time_cap_s": 0,
            "max_steal": 1.0,
        }
    if "training" not in changes:  # the training loop only in the tests that ask for it
        config["training"] = {**config["training"], "cutoffs": []}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def local_config(
    work: Path, archive: Path, formats: tuple[str, ...] | None = None, **changes: object
) -> Path:
    """:func:`write_config` for a run that reads CIFAR-10 from the local ``archive``, with
    the named ``formats`` of config.yaml (None: all), no parallel, DataLoader or training
    jobs and a quick file-system probe; ``changes`` override any of it."""
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())
    base: dict[str, object] = {
        "cifar10": {
            "url": "https://example.invalid/x.tar.gz",
            "md5": md5sum(archive),
            "archive": str(archive),
        },
        "filesystem_probe": {"slow_factor": 3, "max_wait_s": 0},
        "parallel": {**shipped["parallel"], "cutoffs": []},
        "dataloader": {**shipped["dataloader"], "cutoffs": []},
    }
    if formats is not None:
        base["formats"] = {name: shipped["formats"][name] for name in formats}
    return write_config(work, **{**base, **changes})


def make_folder(root: Path, per_class: int = 4, seed: int = 3) -> Path:
    """Three classes of JPEG, PNG and WebP files of mixed sizes and modes (RGB, grey,
    palette, RGBA, 16-bit grey)."""
    rng = np.random.default_rng(seed)
    modes = ["RGB", "L", "P", "RGBA", "I;16"]
    for c, name in enumerate(["cat", "dog", "eel"]):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            height, width = int(rng.integers(20, 70)), int(rng.integers(20, 70))
            rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            image = Image.fromarray(rgb)
            mode = modes[(c + k) % len(modes)]
            if mode == "I;16":
                grey = (rng.integers(0, 65536, (height, width))).astype(np.uint16)
                image = Image.fromarray(grey)
                image.save(folder / f"{k}.png")
                continue
            image = image.convert(mode)
            suffix = [".png", ".jpg", ".webp"][k % 3] if mode in ("RGB", "L") else ".png"
            image.save(folder / f"{k}{suffix}")
    (root / "cat" / "nested").mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(
        root / "cat" / "nested" / "deep.png"
    )
    (root / ".hidden").mkdir()  # hidden folders and files are not classes or images
    (root / "dog" / ".DS_Store").write_bytes(b"x")
    return root


def every_format() -> dict[str, dict[str, Any]]:
    """config.yaml's formats, every other kind with its defaults (found, not listed),
    and a lossy payload (lmdb_jpeg): what the readers of every kind are tested on."""
    from storebench.formats import available_kinds

    formats = yaml.safe_load((ROOT / "config.yaml").read_text())["formats"]
    formats |= {
        kind: {"kind": kind}
        for kind in available_kinds()
        if kind not in {spec["kind"] for spec in formats.values()}
    }
    formats["lmdb_jpeg"] = {"kind": "lmdb", "value": "raw", "payload": "jpeg"}  # lossy
    return formats
