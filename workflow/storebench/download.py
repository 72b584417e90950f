"""Download an archive over HTTP(S): streamed, resumed, retried, md5-verified, atomic."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import requests

from storebench.errors import StorebenchError
from storebench.integrity import md5sum, verify_md5

__all__ = ["download", "md5sum", "verify_md5"]

log = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 20  # read from the network this much at a time


def _fetch_once(
    session: requests.Session, url: str, part: Path, timeout: tuple[float, float]
) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with a Range request)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        if resp.status_code == 416 and have:
            # Range not satisfiable: the partial file is already complete (or bogus);
            # the md5 check after the download decides.
            return
        resp.raise_for_status()
        if have and resp.status_code != 206:
            log.info("server ignored the range request; restarting from byte 0")
            have = 0
        total = resp.headers.get("Content-Length")
        total_bytes = have + int(total) if total is not None else None
        mode = "ab" if have else "wb"
        done, last_report = have, time.monotonic()
        with open(part, mode) as out:
            for block in resp.iter_content(BLOCK_BYTES):
                out.write(block)
                done += len(block)
                now = time.monotonic()
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
) -> Path:
    """Download ``url`` to ``dest``; the file appears only once its md5 matches.

    A partial download is kept as ``dest.part`` and resumed on the next attempt
    or the next run. A finished file with the wrong md5 is deleted.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    with requests.Session() as session:
        for attempt in range(1, retries + 1):
            try:
                _fetch_once(session, url, part, timeout)
                last_error = None
                break
            except requests.HTTPError as exc:
                # An HTTP error status will not cure itself by retrying.
                raise StorebenchError(
                    f"download of {url} failed: {exc}; check cifar10.url or set cifar10.archive "
                    "to a local copy"
                ) from exc
            except (requests.RequestException, OSError) as exc:
                last_error = exc
                log.warning("attempt %d/%d failed: %s", attempt, retries, exc)
                if attempt < retries:
                    time.sleep(backoff * attempt)
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
