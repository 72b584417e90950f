"""The data stage: download, md5, safe extraction, allow-listed unpickling, dataset."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import socket
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from storebench import chunks, cifar, dataset, safepickle
from storebench.download import download, md5sum
from storebench.errors import StorebenchError

from conftest import (
    REAL_SAMPLE_MD5,
    SAMPLE_TRAIN,
    Server,
    marked,
    official_pickle,
    training_set_of,
)


def fast(url: str, dest: Path, md5: str) -> Path:
    return download(url, dest, md5, retries=3, backoff=0.0, timeout=(2.0, 5.0))


def test_download_verifies_and_saves(http_server: Server, tmp_path: Path, sample_md5: str) -> None:
    dest = fast(http_server.url, tmp_path / "a.tar.gz", sample_md5)
    assert md5sum(dest) == sample_md5
    assert dest.read_bytes() == http_server.payload
    assert not (tmp_path / "a.tar.gz.part").exists()


def test_download_md5_mismatch_leaves_nothing(http_server: Server, tmp_path: Path) -> None:
    with pytest.raises(StorebenchError, match="md5 mismatch"):
        fast(http_server.url, tmp_path / "a.tar.gz", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_download_resumes_a_partial_file(
    http_server: Server, tmp_path: Path, sample_md5: str
) -> None:
    half = len(http_server.payload) // 2
    (tmp_path / "a.tar.gz.part").write_bytes(http_server.payload[:half])
    dest = fast(http_server.url, tmp_path / "a.tar.gz", sample_md5)
    assert http_server.ranges == [f"bytes={half}-"]
    assert md5sum(dest) == sample_md5


def test_download_restarts_when_server_ignores_range(
    http_server: Server, tmp_path: Path, sample_md5: str
) -> None:
    http_server.ignore_range = True
    (tmp_path / "a.tar.gz.part").write_bytes(b"garbage that is not the start of the file")
    dest = fast(http_server.url, tmp_path / "a.tar.gz", sample_md5)
    assert md5sum(dest) == sample_md5


def test_download_recovers_from_a_dropped_connection(
    http_server: Server, tmp_path: Path, sample_md5: str
) -> None:
    http_server.truncate_first = 3_500_000  # after three 1 MiB chunks
    dest = fast(http_server.url, tmp_path / "a.tar.gz", sample_md5)
    assert http_server.ranges[0] is None
    assert http_server.ranges[1] is not None and http_server.ranges[1].startswith("bytes=")
    assert int(http_server.ranges[1][6:-1]) > 0
    assert md5sum(dest) == sample_md5


def test_unreachable_host_gives_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar.tar.gz"
    with pytest.raises(StorebenchError) as info:
        fast(url, tmp_path / "a.tar.gz", "0" * 32)
    message = str(info.value)
    assert url in message and "cifar10.archive" in message and "\n" not in message
    assert not (tmp_path / "a.tar.gz").exists()


def test_a_busy_server_is_retried(http_server: Server, tmp_path: Path, sample_md5: str) -> None:
    http_server.busy_first = [503, 429]
    dest = fast(http_server.url, tmp_path / "a.tar.gz", sample_md5)
    assert md5sum(dest) == sample_md5 and len(http_server.ranges) == 3


def test_a_gzip_content_encoding_is_stored_as_sent(
    http_server: Server, tmp_path: Path, sample_md5: str
) -> None:
    """An honest server that labels the .tar.gz as gzip-encoded: decoding it would give
    the tar, whose md5 is not the archive's."""
    http_server.headers = {"Content-Encoding": "gzip"}
    dest = fast(http_server.url, tmp_path / "a.tar.gz", sample_md5)
    assert dest.read_bytes() == http_server.payload


def test_a_content_length_that_is_not_a_number_is_ignored(
    http_server: Server, tmp_path: Path, sample_md5: str
) -> None:
    http_server.headers = {"Content-Length": "lots"}
    http_server.truncate_first = None
    dest = fast(http_server.url, tmp_path / "a.tar.gz", sample_md5)
    assert md5sum(dest) == sample_md5


def test_a_download_larger_than_the_cap_is_refused_and_deleted(
    http_server: Server, tmp_path: Path, sample_md5: str
) -> None:
    for headers in ({}, {"Content-Length": "lots"}):  # announced, or found while reading
        http_server.headers = headers
        with pytest.raises(StorebenchError, match=r"bytes allowed; check cifar10\.url") as info:
            download(http_server.url, tmp_path / "a.tar.gz", sample_md5, max_bytes=100_000)
        assert "\n" not in str(info.value)
        assert list(tmp_path.iterdir()) == []


def test_a_trickle_ends_at_the_deadline(http_server: Server, tmp_path: Path) -> None:
    http_server.trickle_s = 0.05
    started = time.monotonic()
    with pytest.raises(StorebenchError, match="did not finish in time"):
        download(http_server.url, tmp_path / "a.tar.gz", "0" * 32, deadline_s=1.0, backoff=0.0)
    assert time.monotonic() - started < 10
    assert not (tmp_path / "a.tar.gz").exists()


@pytest.mark.parametrize("chunk", [None, 3_000], ids=["one-chunk", "chunks-of-3000"])
def test_extract_and_dataset_match_the_official_decoding(
    chunk: int | None,
    sample: Path,
    sample_md5: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if chunk:  # the dataset is written a chunk at a time; boundaries fall mid-repeat
        monkeypatch.setattr(chunks, "CHUNK_BYTES", chunk * 3072)
    extracted = cifar.extract(sample, tmp_path / "x", sample_md5)
    assert sorted(p.name for p in (extracted / "cifar-10-batches-py").iterdir())[:5] == [
        "batches.meta",
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
    ]
    images_path, labels_path = tmp_path / "images.npy", tmp_path / "labels.npy"
    dataset.build("cifar10", extracted, 2 * SAMPLE_TRAIN + 7, images_path, labels_path)
    images, labels = np.load(images_path), np.load(labels_path)
    expected_images, expected_labels = training_set_of(sample)
    assert images.shape == (2 * SAMPLE_TRAIN + 7, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (2 * SAMPLE_TRAIN + 7,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(images[:SAMPLE_TRAIN], expected_images)
    # Each repeat is marked in its first bytes, so no two rows are the same image.
    np.testing.assert_array_equal(
        images[SAMPLE_TRAIN : 2 * SAMPLE_TRAIN], marked(expected_images, 1)
    )
    np.testing.assert_array_equal(images[2 * SAMPLE_TRAIN :], marked(expected_images[:7], 2))
    assert len({row.tobytes() for row in images}) == len(images)
    np.testing.assert_array_equal(labels[:SAMPLE_TRAIN], expected_labels)
    np.testing.assert_array_equal(labels[2 * SAMPLE_TRAIN :], expected_labels[:7])
    assert set(np.unique(labels)) == set(range(10))


def test_extract_rejects_wrong_md5(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(StorebenchError, match="md5 mismatch"):
        cifar.extract(sample, tmp_path / "x", "f" * 32)
    assert not (tmp_path / "x").exists()


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    for field, value in fields.items():
        setattr(info, field, value)
    return info, b""


@pytest.mark.parametrize(
    "member",
    [
        _file("../escaped"),
        _file("/tmp/storebench-absolute-escape"),
        _special("cifar-10-batches-py/link", tarfile.SYMTYPE, linkname="/etc/passwd"),
        _special("cifar-10-batches-py/hard", tarfile.LNKTYPE, linkname="/etc/passwd"),
        _special("cifar-10-batches-py/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
        _special("cifar-10-batches-py/disk", tarfile.BLKTYPE, devmajor=8, devminor=0),
        _special("cifar-10-batches-py/pipe", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "char-device", "block-device", "fifo"],
)
def test_extract_refuses_unsafe_members(
    member: tuple[tarfile.TarInfo, bytes], tmp_path: Path
) -> None:
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar([_file("cifar-10-batches-py/ok"), member]))
    work = tmp_path / "work"
    work.mkdir()
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    with pytest.raises(StorebenchError, match="refused member"):
        cifar.extract(archive, work / "x", md5)
    assert list(work.iterdir()) == []  # nothing extracted, not even the safe member
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/storebench-absolute-escape").exists()


def test_extract_reports_a_corrupt_archive(sample: Path, tmp_path: Path) -> None:
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(sample.read_bytes()[:4_000_000])
    with pytest.raises(StorebenchError, match="corrupt"):
        cifar.extract(archive, tmp_path / "x", md5sum(archive))
    assert not (tmp_path / "x").exists()


class _Payload:
    """A pickle that creates ``marker`` when loaded, through ``call``."""

    def __init__(self, call: str, marker: Path):
        self.call, self.marker = call, marker

    def __reduce__(self) -> tuple[object, tuple]:
        import builtins
        import os
        import subprocess

        touch = f"open({str(self.marker)!r}, 'w').close()"
        return {
            "os.system": (os.system, (f"touch {self.marker}",)),
            "builtins.eval": (builtins.eval, (touch,)),
            "builtins.exec": (builtins.exec, (touch,)),
            "subprocess.Popen": (subprocess.check_call, (["touch", str(self.marker)],)),
        }[self.call]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ("os.system", r"(posix|os)\.system"),
        ("builtins.eval", r"builtins\.eval"),
        ("builtins.exec", r"builtins\.exec"),
        ("subprocess.Popen", r"subprocess\.check_call"),
    ],
)
def test_hostile_batch_is_refused_and_not_executed(call: str, named: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    batch = tmp_path / "data_batch_1"
    batch.write_bytes(pickle.dumps({b"data": _Payload(call, marker), b"labels": [1]}, protocol=4))
    with pytest.raises(StorebenchError, match=rf"refused to unpickle.*{named}"):
        cifar.load_batch(batch)
    assert not marker.exists()
    # The payload is real: an unrestricted load would have run it.
    pickle.loads(batch.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, "3072"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels outside"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "one integer per image"),
        ({b"labels": [0]}, "not a CIFAR-10 batch"),
    ],
)
def test_malformed_batches_are_named(batch: dict, message: str, tmp_path: Path) -> None:
    path = tmp_path / "data_batch_3"
    path.write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(StorebenchError, match=message) as info:
        cifar.load_batch(path)
    assert str(path) in str(info.value)


def test_missing_batch_is_named(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(StorebenchError, match="data_batch_1: missing"):
        cifar.load_training_set(tmp_path)


def _layout_and_globals(archive: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """An archive's member names and the globals its first batch's pickle names."""
    import pickletools

    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        data = tar.extractfile("cifar-10-batches-py/data_batch_1").read()
    used = set()
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            module, name = arg.split(" ")
            used.add((module, name))
    return names, used


OFFICIAL_GLOBALS = {k for k in safepickle.CIFAR_GLOBALS if not k[0].startswith("numpy._core")}
OFFICIAL_NAMES = sorted(
    f"cifar-10-batches-py/{name}"
    for name in ("batches.meta", *cifar.TRAIN_BATCHES, "test_batch", "readme.html")
)


def test_made_up_archive_has_the_official_layout_and_globals(sample: Path) -> None:
    assert _layout_and_globals(sample) == (OFFICIAL_NAMES, OFFICIAL_GLOBALS)
    assert sample.stat().st_size > 4_000_000  # the truncation tests cut inside it


def test_allow_list_is_exactly_the_official_globals(real_sample: Path) -> None:
    """The real sample's batches use exactly the globals on the allow-list, nothing more."""
    assert md5sum(real_sample) == REAL_SAMPLE_MD5
    names, used = _layout_and_globals(real_sample)
    assert names == OFFICIAL_NAMES and used == OFFICIAL_GLOBALS


def test_gzip_garbage_is_reported(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(gzip.compress(b"this is not a tar stream" * 100))
    with pytest.raises(StorebenchError, match="not a readable tar archive"):
        cifar.extract(archive, tmp_path / "x", md5sum(archive))


# --- hostile input, round two: archives and batches ----------------------------------


class _Alloc:
    """A pickled 'array' made by numpy's own _reconstruct with a shape and no data."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def __reduce__(self) -> tuple[object, tuple]:
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, self.shape, b"B"))


@pytest.mark.parametrize("shape", [(10_000, 3072), (10**9, 3072)], ids=["zeros", "huge"])
def test_an_array_made_from_nothing_is_refused(shape: tuple[int, int], tmp_path: Path) -> None:
    """It passes the allow-list (numpy's _reconstruct), but would become 10,000 zero images
    (or ask for 3 TB) from a file of a few hundred bytes."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(official_pickle({b"data": _Alloc(shape), b"labels": [0]}))
    assert path.stat().st_size < 300
    with pytest.raises(StorebenchError, match="made from nothing") as info:
        cifar.load_batch(path)
    assert "\n" not in str(info.value)


def test_a_batch_of_too_many_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_2"
    batch = {b"data": np.zeros((10_001, 3072), np.uint8), b"labels": [0] * 10_001}
    path.write_bytes(official_pickle(batch))
    with pytest.raises(StorebenchError, match="holds 10001 rows"):
        cifar.load_batch(path)


def _archive_of(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(data)
    return path, hashlib.md5(data).hexdigest()


HOSTILE_ARCHIVES = {
    "empty": (lambda: b"", "not a readable tar archive"),
    "html": (lambda: b"<!DOCTYPE html><html><body>Moved</body></html>", "not a readable tar"),
    "not-tar": (lambda: gzip.compress(b"just some text"), "not a readable tar archive"),
    "many-members": (
        lambda: _tar([_file(f"cifar-10-batches-py/f{i}") for i in range(65)]),
        "65 members",
    ),
    "huge-member": (
        lambda: _tar([_file("cifar-10-batches-py/big", bytes(65 * 2**20))]),
        "'cifar-10-batches-py/big' is 65 MiB",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_ARCHIVES)
def test_an_archive_with_a_matching_md5_but_no_cifar_inside_is_refused(
    case: str, tmp_path: Path
) -> None:
    """The md5 in the config was set to match the file, so only the contents can tell."""
    build, message = HOSTILE_ARCHIVES[case]
    archive, md5 = _archive_of(tmp_path, build())
    with pytest.raises(StorebenchError, match=message) as info:
        cifar.extract(archive, tmp_path / "x", md5)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.tar.gz"]  # nothing left


def test_what_is_extracted_is_what_was_verified(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive is swapped for another right after its md5 was checked: the open file
    that was verified is the one extracted."""
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(sample.read_bytes())
    md5 = md5sum(archive)
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(_tar([_file("cifar-10-batches-py/evil", b"x")]))
    real_md5_of = cifar.md5_of

    def md5_then_swap(handle):
        digest = real_md5_of(handle)
        evil.replace(archive)
        return digest

    monkeypatch.setattr(cifar, "md5_of", md5_then_swap)
    extracted = cifar.extract(archive, tmp_path / "x", md5)
    names = sorted(p.name for p in (extracted / "cifar-10-batches-py").iterdir())
    assert "evil" not in names and "data_batch_1" in names


def test_a_full_disk_is_not_called_a_corrupt_archive(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", full)
    with pytest.raises(StorebenchError, match="no space left on the device") as info:
        cifar.extract(sample, tmp_path / "x", md5sum(sample))
    assert "corrupt" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the staging folder is gone


def test_a_repeat_mark_does_not_wrap_where_a_one_image_source_repeats_past_65536() -> None:
    """The mark is the repeat's number over eight bytes: repeat 65,537 of a one-image
    source is not repeat 1 again, so a reader serving row ``i mod 65,536`` fails; a
    grayscale image is marked too."""
    from storebench.datasetfile import repeated_rows

    rng = np.random.default_rng(0)
    for shape in ((1, 4, 4, 3), (1, 4, 4, 1), (1, 5, 3)):
        source = rng.integers(0, 256, shape, dtype=np.uint8)
        rows = repeated_rows(source, np.array([0, 1, 65_536, 65_537, 70_000]))
        assert len({row.tobytes() for row in rows}) == 5, shape
        for row, repeat in zip(rows, (0, 1, 65_536, 65_537, 70_000), strict=True):
            np.testing.assert_array_equal(row, marked(source, repeat)[0])
    tiny = rng.integers(0, 256, (1, 1, 1, 3), dtype=np.uint8)  # 3 bytes: 24 bits of mark
    rows = repeated_rows(tiny, np.array([1, 1 + 2**24]))
    np.testing.assert_array_equal(rows[0], rows[1])  # what a 3-byte image can hold
