"""``tuneloop review`` stops the Streamlit server it started (issue 11, class 8).

A real ``tuneloop review`` subprocess on a free loopback port: once the app answers, SIGTERM to
``tuneloop`` must stop Streamlit too (no re-parented child keeps the port). A second
``tuneloop review`` on a port in use gets one line that suggests ``--port``, exit 2. Waits are
bounded; only 127.0.0.1 is used.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuneloop.cli.child import port_in_use, run_forwarding_signals
from tuneloop.store import Store

STARTUP_S = 120  # Streamlit imports take a while on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            found += [int(child) for child in
                      Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to find the child")
def test_sigterm_stops_streamlit_and_a_busy_port_is_one_line(tmp_path):
    database = tmp_path / "tuneloop.db"
    with Store(database) as store:
        store.add_reviewer("ann", "hash", "expert")
    port = free_port()
    command = [sys.executable, "-m", "tuneloop.cli", "review", "--db", str(database),
               "--port", str(port)]
    review = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    streamlit: list[int] = []
    try:
        deadline = time.monotonic() + STARTUP_S
        while not answers(port):
            assert review.poll() is None, review.stdout.read() if review.stdout else ""
            assert time.monotonic() < deadline, "the review app did not start"
            time.sleep(0.5)
        streamlit = children(review.pid)
        assert streamlit, "streamlit runs as a child of tuneloop review"

        second = subprocess.run(command, capture_output=True, text=True, timeout=STARTUP_S)
        lines = [line for line in (second.stdout + second.stderr).splitlines() if line.strip()]
        assert second.returncode == 2 and len(lines) == 1, lines
        assert f"port {port}" in lines[0] and "--port" in lines[0]

        review.send_signal(signal.SIGTERM)
        assert review.wait(60) == 0  # stopped on request: not an error
        deadline = time.monotonic() + 10
        while (any(alive(pid) for pid in streamlit) or answers(port)) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in streamlit), "streamlit outlived tuneloop review"
        assert not answers(port)
    finally:
        if review.poll() is None:
            review.kill()
            review.wait(10)
        for pid in streamlit:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_port_in_use_is_found_before_the_server_starts():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


def test_signals_are_forwarded_to_the_child_and_waited_for(tmp_path):
    """Without the review app: a child that records the signal it got, then exits."""
    marker = tmp_path / "got"
    child = ("import signal, sys, time, pathlib\n"
             "def stop(number, frame):\n"
             f"    pathlib.Path({str(marker)!r}).write_text(str(number)); sys.exit(0)\n"
             "signal.signal(signal.SIGTERM, stop)\n"
             f"pathlib.Path({str(marker)!r} + '.ready').write_text('')\n"
             "time.sleep(60)\n")
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from tuneloop.cli.child import run_forwarding_signals; "
         "code, stopped = run_forwarding_signals([sys.executable, '-c', sys.argv[1]]); "
         "print(code, stopped)", child],
        stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not Path(f"{marker}.ready").exists():
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.1)
    parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=30)
    assert marker.read_text() == str(int(signal.SIGTERM))
    assert out.split() == ["0", str(int(signal.SIGTERM))]


def test_the_child_exit_code_comes_back_when_no_signal_arrives():
    assert run_forwarding_signals([sys.executable, "-c", "raise SystemExit(3)"]) == (3, None)
