"""The login lockout under a burst of parallel guesses (issue 11, class 7).

Thirty guesses released together used to be checked all thirty: ``authenticate`` read the lock
state, then spent ~0.1 s in Argon2, then counted the failure, so every guess passed the check
before the first was counted, and the right password among them got a session although 29
failures were recorded. Now each attempt takes one of the ``MAX_FAILURES`` slots atomically
before the password check. These tests release 30 guesses at once from threads and from
processes, with a hasher slowed to 0.3 s per check so the guesses truly overlap, and check that
at most ``MAX_FAILURES`` guesses were checked against the real hash, that the account ends
locked, and that the right password sent once the slots are taken is refused.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from tuneloop import auth
from tuneloop.auth import LOGIN_FAILED, authenticate, create_reviewer, is_locked, utc_now
from tuneloop.errors import AuthError
from tuneloop.store import Store

PASSWORD = "the right password"
GUESSES = 30
CHECK_SECONDS = 0.3


class SlowHasher(PasswordHasher):
    """Cheap Argon2 parameters, but every check takes ``CHECK_SECONDS``: a burst overlaps for
    sure."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        time.sleep(CHECK_SECONDS)
        return super().verify(hash, password)


def counting_hasher(log: Path, real_hash: str) -> PasswordHasher:
    """A ``SlowHasher`` that writes each password checked against the real hash to ``log``
    (appended, one line each: threads and processes alike)."""

    class Counting(SlowHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
            if hash == real_hash:
                with open(log, "a", encoding="utf-8") as out:
                    out.write(f"{password}\n")
            return super().verify(hash, password)

    return Counting()


@pytest.fixture
def account(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "tuneloop.db"
    with Store(path) as store:
        create_reviewer(store, "ann", PASSWORD, hasher=SlowHasher())
        real_hash = store.reviewer("ann")["password_hash"]
    return path, real_hash


def guess(path: Path, password: str, log: Path, real_hash: str) -> bool:
    """One login attempt in its own connection; True when it logged in."""
    with Store(path) as store:
        try:
            authenticate(store, "ann", password, hasher=counting_hasher(log, real_hash))
        except AuthError as error:
            assert str(error) == LOGIN_FAILED
            return False
        return True


def state(path: Path) -> dict:
    with Store(path) as store:
        return store.reviewer("ann")


# ---- threads ------------------------------------------------------------------------------------


def burst_in_threads(path: Path, passwords: list[str], log: Path, real_hash: str) -> list[bool]:
    results: list[bool | None] = [None] * len(passwords)
    barrier = threading.Barrier(len(passwords))

    def attempt(number: int) -> None:
        barrier.wait()
        results[number] = guess(path, passwords[number], log, real_hash)

    threads = [threading.Thread(target=attempt, args=(number,)) for number in range(len(passwords))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(result is not None for result in results)
    return results  # type: ignore[return-value]


def test_thirty_wrong_guesses_in_threads_get_five_checks_and_lock(account, tmp_path):
    path, real_hash = account
    log = tmp_path / "checks.log"
    results = burst_in_threads(path, [f"guess {n}" for n in range(GUESSES)], log, real_hash)
    assert not any(results)
    checked = log.read_text().splitlines()
    assert len(checked) == auth.MAX_FAILURES, checked
    row = state(path)
    assert is_locked(row, utc_now()) and row["failed_logins"] == 0


def test_the_right_password_in_a_burst_after_the_limit_is_refused_threads(account, tmp_path):
    path, real_hash = account
    log = tmp_path / "checks.log"
    wrong = [f"guess {n}" for n in range(GUESSES - 1)]
    late: list[bool] = []

    def right_once_slots_are_taken() -> None:
        deadline = time.monotonic() + 60
        while state(path)["failed_logins"] < auth.MAX_FAILURES and time.monotonic() < deadline:
            time.sleep(0.01)
        # the wrong guesses' checks are still running: the old code saw no lock yet here
        assert not is_locked(state(path), utc_now())
        late.append(guess(path, PASSWORD, log, real_hash))

    helper = threading.Thread(target=right_once_slots_are_taken)
    helper.start()
    results = burst_in_threads(path, wrong, log, real_hash)
    helper.join(120)
    assert late == [False] and not any(results)
    assert PASSWORD not in log.read_text().splitlines()  # never checked against the real hash
    assert len(log.read_text().splitlines()) == auth.MAX_FAILURES
    assert is_locked(state(path), utc_now())


def test_the_right_password_within_the_allowance_still_logs_in(account, tmp_path):
    path, real_hash = account
    log = tmp_path / "checks.log"
    results = burst_in_threads(path, [PASSWORD, "wrong one", "wrong two"], log, real_hash)
    assert sorted(results) == [False, False, True]
    assert not is_locked(state(path), utc_now())


# ---- processes ----------------------------------------------------------------------------------


def process_guess(path: str, password: str, log: str, real_hash: str, start: float,
                  results: "multiprocessing.Queue[bool]") -> None:
    time.sleep(max(0.0, start - time.time()))  # released together
    if password == PASSWORD:  # sent once the wrong guesses have taken every slot
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            row = state(Path(path))
            if row["failed_logins"] >= auth.MAX_FAILURES or is_locked(row, utc_now()):
                break
            time.sleep(0.01)
    results.put(guess(Path(path), password, Path(log), real_hash))


def test_thirty_guesses_from_processes_get_five_checks_and_the_right_one_is_refused(account,
                                                                                  tmp_path):
    path, real_hash = account
    log = tmp_path / "checks.log"
    # fork: 30 spawned interpreters importing tuneloop take minutes on 2 cores; the children
    # use only sqlite3 and argon2 (no torch, no threads), which are safe after fork
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    results: multiprocessing.Queue = context.Queue()
    start = time.time() + (3 if "fork" in methods else 60)
    passwords = [f"guess {n}" for n in range(GUESSES - 1)] + [PASSWORD]
    processes = [context.Process(target=process_guess,
                                 args=(str(path), password, str(log), real_hash, start, results))
                 for password in passwords]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    checked = log.read_text().splitlines()
    assert len(checked) <= auth.MAX_FAILURES, checked
    # the right password came once the wrong ones had taken every slot
    assert not any(outcomes) and PASSWORD not in checked
    assert is_locked(state(path), utc_now())
