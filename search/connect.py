"""Where trials run: a Ray of this run's own, bound to 127.0.0.1, or a running cluster at ``--address``.

``ray.init()`` without an address joins whatever cluster Ray's temp folder
names as the latest (one ``ray start --head`` left running), and a local Ray
on Linux listens on every interface. A local run here starts its own Ray
(``address="local"``) and keeps its servers on the loopback interface.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from search.interrupt import calling_after
from trainables import InputError
from trainables.ray_compat import loopback_node, quiet_token_auth_warning

LOOPBACK = "127.0.0.1"
# ray.init to a cluster takes seconds; a cluster that has not taken the driver in a minute will not.
CONNECT_TIMEOUT_S = 60.0
# Ray swaps 127.0.0.1 for the machine's outward address unless it believes that it runs single-node
# (trainables.ray_compat.loopback_node). With 127.0.0.1 kept as the node address, the GCS, raylet,
# workers and agents listen on 127.0.0.1 only (measured: tests/search/test_connect.py).
# The first bytes of an HTTP/2 connection; a gRPC server (Ray's GCS, the Ray
# client server) answers with a SETTINGS frame (type 4) at once.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS = 4


DRIVER_MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int = DRIVER_MALLOC_ARENAS) -> bool:
    """Cap this process's glibc malloc arenas (what MALLOC_ARENA_MAX does at start-up); False where there is no glibc.

    glibc gives each thread that allocates an arena of its own, up to 8 per
    core, and an arena keeps memory its thread has freed. Ray and Tune run some
    30 threads in the driver; at 1,440 one-epoch trials the arenas held about
    100 MiB of the driver's peak (1,126 MiB; 1,026 with two arenas; 200 trials:
    922 and 918; benchmarks/driver_memory.py). It takes effect for the arenas
    made after it, so call it before Ray starts (here, before init_ray).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    return mallopt is not None and mallopt(_M_ARENA_MAX, arenas) == 1


def init_ray(address: str | None, *, verbose: bool = False, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Connect to the cluster at ``address`` (giving up after ``timeout_s``), or start a local Ray of this run's own."""
    with _give_up_after(timeout_s, address) if address else contextlib.nullcontext():
        _init_ray(address, verbose=verbose)


@contextlib.contextmanager
def _give_up_after(seconds: float, address: str) -> Iterator[None]:
    """End the process with one line and exit status 2 if the block has not returned within ``seconds``.

    ray.init waits for a cluster inside Ray's C++ client, where no Python exception can reach it
    (and one raised there left a half-built core worker that crashed at exit): a timer thread ends the
    process instead. Nothing is saved before Ray has started, so there is nothing to clean up.
    """
    def give_up() -> None:
        os.write(2, f"python -m search.run: error: the Ray cluster at {address!r} did not take this driver within "
                    f"{seconds:g} s (--connect-timeout); nothing was saved\n".encode())
        os._exit(2)

    with calling_after(seconds, give_up):
        yield


def _init_ray(address: str | None, *, verbose: bool) -> None:
    import ray
    from ray.exceptions import AuthenticationError

    # Ray's INFO lines ("Started a local Ray instance.") only with --verbose; warnings always.
    quiet = {} if verbose else {"logging_level": logging.WARNING}
    try:
        if address and _on_loopback(address):  # a cluster whose nodes listen on 127.0.0.1: keep it
            with loopback_node() as on_loopback:
                ray.init(address=address, log_to_driver=False, **on_loopback, **quiet)
        elif address:
            ray.init(address=address, log_to_driver=False, **quiet)
        else:
            with loopback_node() as on_loopback, quiet_token_auth_warning():
                ray.init(address="local", include_dashboard=False, log_to_driver=False, **on_loopback, **quiet)
    except AuthenticationError:
        raise InputError(f"the Ray cluster at {address!r} uses token authentication and no token is set here: "
                         "set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token") from None
    except (ConnectionError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not address:
            raise InputError(f"cannot start a local Ray: {reason}") from None
        # An unreachable port, or one that is not Ray, was ruled out by check_address; a refused token is the usual cause now.
        token = "the token set here was refused" if _has_auth_token() else "no token is set here"
        raise InputError(f"cannot connect to the Ray cluster at {address!r} ({reason}); if it uses token "
                         f"authentication, {token}: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token") from None


def _on_loopback(address: str) -> bool:
    """Whether ``host:port`` names this machine's loopback interface (127.0.0.0/8, ::1 or localhost)."""
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(socket.gethostbyname(host) if host == "localhost" else host).is_loopback
    except (ValueError, OSError):  # a host name, not an address
        return False


def _has_auth_token() -> bool:
    """Whether this process would present a Ray auth token (env, token file, or ~/.ray/auth_token)."""
    default = Path.home() / ".ray" / "auth_token"
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or default.exists())


def check_address(address: str | None, *, timeout_s: float = 5.0) -> None:
    """A Ray address that answers: ``host:port`` or ``ray://host:port`` speaking gRPC, or ``auto``.

    ray.init would otherwise retry an unreachable address, or a port that is
    not Ray's, for minutes, deaf to SIGTERM while it waits in Ray's C++ client.
    """
    if address is None or address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--address {address!r} is not host:port (e.g. 10.0.0.5:6379, ray://head:10001 or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as conn:
            grpc = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true") or _answers_http2(conn)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InputError(f"cannot reach a Ray cluster at {address!r} ({reason}); is `ray start --head` running "
                         f"there, and is the port open to this machine?") from None
    if not grpc:
        raise InputError(f"{address!r} answers, but not as Ray does (no gRPC handshake within {timeout_s:g} s); pass "
                         "the port of the head's GCS (6379 by default) or ray://head:10001 for the Ray client")


def _answers_http2(conn: socket.socket) -> bool:
    """Whether the peer answers the HTTP/2 preface with a SETTINGS frame, as every gRPC server does.

    With TLS (RAY_USE_TLS) the plain preface means nothing; the caller skips this check then.
    """
    try:
        conn.sendall(HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = conn.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except TimeoutError:
        return False
    return header[3] == HTTP2_SETTINGS
