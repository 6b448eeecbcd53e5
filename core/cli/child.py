"""Running a long-lived child server (the Streamlit review app) from a CLI command.

``subprocess.run`` leaves the child behind when the parent gets SIGTERM (a service manager, a
container stop, ``kill``): the parent dies at once, the child is re-parented to init and keeps
the port. ``run_forwarding_signals`` passes SIGTERM and SIGINT on to the child and waits for it,
so stopping ``tuneloop review`` stops the app. ``port_in_use`` finds a busy port before the
child starts, so the user gets one line that names ``--port`` instead of a server traceback.
"""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
from typing import Any, Sequence

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_S = 10.0  # how long a child that was asked to stop may take before it is killed


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (binding with ``SO_REUSEADDR``, as
    the server will, so a socket lingering in TIME_WAIT does not count)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # an address the server itself will refuse, with its own message
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def run_forwarding_signals(command: Sequence[str]) -> tuple[int, int | None]:
    """Run ``command`` until it exits; SIGTERM, SIGINT and SIGHUP received meanwhile are passed
    on to it. Returns its exit code and the signal that stopped us (``None``: it exited alone).

    Whatever happens here (an exception, a second signal), the child is not left running: it is
    asked to stop, then killed after ``STOP_GRACE_S``.
    """
    child = subprocess.Popen(list(command))
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    previous: dict[int, Any] = {}
    for number in FORWARDED:
        try:
            previous[number] = signal.signal(number, forward)
        except ValueError:  # not the main thread: signals go to the main thread's handlers
            break
    try:
        returncode = child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return returncode, (received[0] if received else None)
