"""Download an archive over HTTP(S): streamed, resumed, retried, md5-verified, atomic."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import requests
import urllib3

from storebench.errors import StorebenchError
from storebench.integrity import md5sum, verify_md5

__all__ = ["download", "md5sum", "verify_md5"]

log = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 20  # read from the network this much at a time
MAX_BYTES = 1 << 30  # the official archive is 163 MiB; nothing bigger is taken
DEADLINE_S = 3600.0  # a download (all attempts) that takes longer than this is given up
RETRY_STATUS = (429, 502, 503, 504)  # the server asks to come back later


class TooBig(StorebenchError):
    """The download is larger than any archive storebench takes."""


class TooSlow(StorebenchError):
    """The download did not finish in time (a trickle)."""


class RetryLater(requests.RequestException):
    """The server answered 429 or 5xx-busy: try again after a pause."""


def _length(value: str | None) -> int | None:
    """Content-Length as a number of bytes; None if absent or not a whole number."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _fetch_once(
    session: requests.Session,
    url: str,
    part: Path,
    timeout: tuple[float, float],
    deadline: float,
    max_bytes: int,
) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with a Range request).

    The body is stored exactly as sent: a ``Content-Encoding`` (gzip) is not decoded,
    since the md5 is the file's. More than ``max_bytes`` in all, or time past
    ``deadline`` (``time.monotonic``), ends it with an error.
    """
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-", "Accept-Encoding": "identity"}
    if not have:
        del headers["Range"]
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        if resp.status_code == 416 and have:
            # Range not satisfiable: the partial file is already complete (or bogus);
            # the md5 check after the download decides.
            return
        if resp.status_code in RETRY_STATUS:
            raise RetryLater(f"{resp.status_code} {resp.reason}")
        resp.raise_for_status()
        if have and resp.status_code != 206:
            log.info("server ignored the range request; restarting from byte 0")
            have = 0
        total = _length(resp.headers.get("Content-Length"))
        total_bytes = have + total if total is not None else None
        if total_bytes is not None and total_bytes > max_bytes:
            raise TooBig(
                f"{url} is {total_bytes:,} bytes, more than the {max_bytes:,} bytes allowed; "
                "check cifar10.url (the official archive is 163 MiB)"
            )
        mode = "ab" if have else "wb"
        done, last_report = have, time.monotonic()
        with open(part, mode) as out:
            # read1: whatever has arrived (at most a block), so the deadline is checked
            # after every read however slowly the bytes come.
            while block := resp.raw.read1(BLOCK_BYTES, decode_content=False):
                out.write(block)
                done += len(block)
                now = time.monotonic()
                if done > max_bytes:
                    raise TooBig(
                        f"{url} sent more than the {max_bytes:,} bytes allowed; check "
                        "cifar10.url (the official archive is 163 MiB)"
                    )
                if now > deadline:
                    raise TooSlow(f"{url} did not finish in time")
                if now - last_report >= 2.0:
                    last_report = now
                    _report(done, total_bytes)
            out.flush()
            os.fsync(out.fileno())
        _report(done, total_bytes)
        if total_bytes is not None and done < total_bytes:
            raise requests.ConnectionError(f"connection closed at {done} of {total_bytes} bytes")


def _report(done: int, total: int | None) -> None:
    if total:
        log.info("downloaded %.1f of %.1f MB (%.0f%%)", done / 1e6, total / 1e6, 100 * done / total)
    else:
        log.info("downloaded %.1f MB", done / 1e6)


def download(
    url: str,
    dest: Path,
    md5: str,
    *,
    retries: int = 5,
    timeout: tuple[float, float] = (10.0, 60.0),
    backoff: float = 2.0,
    deadline_s: float = DEADLINE_S,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Download ``url`` to ``dest``; the file appears only once its md5 matches.

    A partial download is kept as ``dest.part`` and resumed on the next attempt
    or the next run. A finished file with the wrong md5 is deleted. Dropped
    connections and a busy server (429, 502-504) are retried; all attempts together
    end after ``deadline_s``; more than ``max_bytes`` is refused (and deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    deadline = time.monotonic() + deadline_s
    with requests.Session() as session:
        for attempt in range(1, retries + 1):
            try:
                _fetch_once(session, url, part, timeout, deadline, max_bytes)
                last_error = None
                break
            except TooBig:
                part.unlink(missing_ok=True)
                raise
            except TooSlow as exc:
                raise StorebenchError(
                    f"{exc}; the partial file is kept and resumed next time, or set "
                    "cifar10.archive to a local copy"
                ) from None
            except requests.HTTPError as exc:
                # An HTTP error status will not cure itself by retrying.
                raise StorebenchError(
                    f"download of {url} failed: {exc}; check cifar10.url or set cifar10.archive "
                    "to a local copy"
                ) from exc
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                last_error = exc
                log.warning("attempt %d/%d failed: %s", attempt, retries, exc)
                if attempt < retries:
                    time.sleep(min(backoff * attempt, max(0.0, deadline - time.monotonic())))
    if last_error is not None:
        raise StorebenchError(
            f"cannot download {url} ({type(last_error).__name__} after {retries} attempts); "
            "check the network, or set cifar10.archive in config.yaml to a local copy of "
            "the archive"
        )
    try:
        verify_md5(part, md5)
    except StorebenchError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    log.info("verified md5 %s; saved %s", md5, dest)
    return dest
