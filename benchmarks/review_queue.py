"""The review loop at scale: 1,000,000 outputs and 200,000 ratings in one project database.

Measures what an expert waits for on every item: fetching the next queue item, saving a rating,
and the rating page rendering (the whole Streamlit script through AppTest, so an upper bound on
the server's share of a page view). Each figure is measured twice in the same run, with and
without the indexes migration m002 adds for the queue (``review_queue_next``,
``ratings_reviewer``), and printed side by side with their ratio: on a shared machine the ratio
is the figure to trust, the absolute times depend on the load.

The database is built with bulk inserts (``executemany``), not through the store's one-row paths:

- 10 cycles of 100,000 outputs; each cycle queued 30,000 items asking for 2 ratings, and the
  newest also 5,000 pair items (its answer against the previous cycle's);
- 200,000 ratings by 20 experts: the older cycles' items fully rated, the newest cycle's partly
  (one rating of two), so "next item for me" must skip thousands of items the expert already rated.

Run: ``python benchmarks/review_queue.py`` (about a minute; ~350 MB in a temporary folder).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

CYCLES = 10
OUTPUTS_PER_CYCLE = 100_000
QUEUED_PER_CYCLE = 30_000
PAIRS = 5_000
EXPERTS = 20
RATINGS = 200_000
SAMPLES = 200  # per store operation (30 without the indexes: each takes ~0.3 s then)
PAGE_SAMPLES = 30
M002_INDEXES = ("review_queue_next", "ratings_reviewer")  # dropped for the "without" run
LABELS = [f"intent_{n}" for n in range(150)]


def build(path: Path) -> dict[str, Any]:
    """The database, by bulk inserts; returns the reviewer ids the measurements use."""
    from argon2 import PasswordHasher

    from tuneloop.store import Store

    Store(path).close()  # schema: every migration
    rng = random.Random(7)
    now = "2026-01-01T00:00:00.000+00:00"
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    config = json.dumps({"data": {"labels": LABELS}, "review": {"blind": True}})
    db.executemany(
        "INSERT INTO cycles (id, project, status, parent_id, task, seed, config, plugins, "
        "base_model, start_model, started_at) VALUES (?, 'bench', 'done', ?, "
        "'classification', 1, ?, '[]', 'm', 'm', ?)",
        [(cycle, cycle - 1 or None, config, now) for cycle in range(1, CYCLES + 1)])

    def outputs():
        output_id = 0
        for cycle in range(1, CYCLES + 1):
            for number in range(OUTPUTS_PER_CYCLE):
                output_id += 1
                label = LABELS[number % len(LABELS)]
                yield (output_id, cycle, f"{number:016x}",
                       f"customer message number {number}: please help me with {label}",
                       LABELS[(number * 7 + cycle) % len(LABELS)], label,
                       rng.random(), now)

    db.executemany("INSERT INTO outputs (id, cycle_id, example_id, input, output, reference, "
                   "confidence, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", outputs())
    first_output = {cycle: (cycle - 1) * OUTPUTS_PER_CYCLE + 1 for cycle in range(1, CYCLES + 1)}
    queue = []
    for cycle in range(1, CYCLES + 1):
        for priority in range(QUEUED_PER_CYCLE):
            queue.append((first_output[cycle] + priority, None, cycle, priority))
    for number in range(PAIRS):  # the newest cycle's answers against the previous cycle's,
        # spread among its single items after the first 20,000 (which experts have rated)
        queue.append((first_output[CYCLES] + QUEUED_PER_CYCLE + number,
                      first_output[CYCLES - 1] + QUEUED_PER_CYCLE + number, CYCLES,
                      20_000 + number * 2))
    db.executemany("INSERT INTO review_queue (output_id, pair_output_id, cycle_id, priority, "
                   "sampler, ratings_needed, status, created_at) VALUES (?, ?, ?, ?, "
                   "'least_confident', 2, 'open', ?)", [(*row, now) for row in queue])
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    password_hash = cheap.hash("correct horse")
    db.executemany("INSERT INTO reviewers (id, name, password_hash, role, created_at) "
                   "VALUES (?, ?, ?, ?, ?)",
                   [(n, f"expert{n}", password_hash, "admin" if n == 1 else "expert", now)
                    for n in range(1, EXPERTS + 3)])  # two more: a busy and a fresh expert

    # Ratings: old cycles' items get both their ratings (closed); the newest cycle's first items
    # one rating each, 5,000 of them by the "busy" expert (id EXPERTS + 1).
    ratings, closed = [], []
    newest = [row for row in queue if row[2] == CYCLES and row[1] is None]
    busy = EXPERTS + 1
    for output_id, _, _, _ in newest[:5_000]:
        ratings.append((output_id, busy))
    for output_id, _, _, _ in newest[5_000:20_000]:
        ratings.append((output_id, rng.randrange(1, EXPERTS + 1)))
    older = [row for row in queue if row[2] < CYCLES]
    for output_id, _, _, _ in older:
        if len(ratings) >= RATINGS:
            break
        first_expert = rng.randrange(1, EXPERTS + 1)
        second_expert = first_expert % EXPERTS + 1
        ratings += [(output_id, first_expert), (output_id, second_expert)]
        closed.append(output_id)
    ratings = ratings[:RATINGS]
    db.executemany("INSERT INTO ratings (output_id, reviewer_id, verdict, score, created_at) "
                   "VALUES (?, ?, ?, ?, ?)",
                   [(output_id, reviewer, "approve" if output_id % 3 else "reject",
                     1 + output_id % 5, now) for output_id, reviewer in ratings])
    db.executemany("UPDATE review_queue SET status = 'done' WHERE output_id = ? AND "
                   "pair_output_id IS NULL", [(output_id,) for output_id in closed])
    db.execute("COMMIT")
    db.execute("ANALYZE")
    counts = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
              for table in ("outputs", "ratings", "review_queue")}
    db.close()
    return {"busy": busy, "fresh": EXPERTS + 2, "counts": counts}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def timed(action: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(path: Path, people: dict[str, Any], samples: int) -> dict[str, tuple[float, float]]:
    from tuneloop.store import Store

    figures: dict[str, tuple[float, float]] = {}
    with Store(path, migrate=False) as store:
        for who in ("fresh", "busy"):
            reviewer = people[who]
            figures[f"next item ({who} expert)"] = percentiles(
                timed(lambda reviewer=reviewer: store.next_queue_item(reviewer), samples))
        # Save ratings as the busy expert on the items the queue gives them next (the write
        # path the app takes: supersede check, insert, queue update), then change each one.
        busy, skipped, items = people["busy"], [], []
        for _ in range(samples):
            item = store.next_queue_item(busy, skip_queue_ids=skipped)
            skipped.append(item["queue_id"])
            items.append(item["id"])
        for name, verdict in (("save a rating", "approve"), ("save an edit", "reject")):
            pending = iter(items)
            figures[name] = percentiles(timed(
                lambda pending=pending, verdict=verdict: store.add_rating(
                    reviewer_id=busy, output_id=next(pending), verdict=verdict, score=4),
                samples))
    figures["rating page render"], figures["rate through the page"] = page_render(path)
    figures["admin dashboard render"] = dashboard_render(path)
    return figures


def page_render(path: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """The logged-in rating page, rerun from scratch ``PAGE_SAMPLES`` times, and ``PAGE_SAMPLES``
    items approved by clicking (callback, save, next item drawn), through AppTest."""
    import logging

    from argon2 import PasswordHasher
    from streamlit.testing.v1 import AppTest

    from tuneloop import auth

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    auth.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    os.environ["TUNELOOP_DB"] = str(path)
    app = Path(__file__).resolve().parent.parent / "review_app" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=60).run()
    at.text_input(key="login-name").input(f"expert{EXPERTS + 1}")
    at.text_input(key="login-password").input("correct horse")
    at.button(key="login").click().run()
    assert not at.exception and any(t.value.startswith("Item ") for t in at.text), at
    at.run()  # warm: compiled pages, label set cached
    render = percentiles(timed(at.run, PAGE_SAMPLES))

    def approve() -> None:
        button = next(b for b in at.button if b.key and b.key.startswith(("approve-", "left-")))
        button.click().run()

    return render, percentiles(timed(approve, PAGE_SAMPLES))


def dashboard_render(path: Path) -> tuple[float, float]:
    """The admin dashboard on the newest cycle (aggregates over every rating), 5 reruns."""
    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parent.parent / "review_app" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=120).run()
    at.text_input(key="login-name").input("expert1")  # the admin
    at.text_input(key="login-password").input("correct horse")
    at.button(key="login").click().run()
    at.switch_page("dashboard.py").run()
    assert not at.exception and at.header, at
    return percentiles(timed(at.run, 5))


def main() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="tuneloop-bench-") as folder:
        path = Path(folder) / "review.db"
        started = time.perf_counter()
        people = build(path)
        built = time.perf_counter() - started
        print(f"built {people['counts']} in {built:.0f} s", file=sys.stderr)
        with_indexes = measure(path, people, SAMPLES)
        db = sqlite3.connect(str(path))
        for name in M002_INDEXES:
            db.execute(f"DROP INDEX {name}")
        db.execute("CREATE INDEX review_queue_open ON review_queue(status, priority)")  # m001's
        db.execute("ANALYZE")
        db.close()
        without = measure(path, people, 30)
    rows = []
    print("\nReview loop at 1M outputs / 200k ratings (p50 / p95 in ms; machine shared, "
          "so compare the ratio)")
    print(f"{'operation':<28} {'with m002 indexes':>20} {'without':>20} {'p95 ratio':>10}")
    for name, (median, p95) in with_indexes.items():
        other_median, other_p95 = without[name]
        ratio = other_p95 / p95 if p95 else float("nan")
        row = (name, f"{median:7.2f} / {p95:7.2f}", f"{other_median:7.2f} / {other_p95:7.2f}",
               f"{ratio:6.1f}x")
        rows.append(row)
        print(f"{row[0]:<28} {row[1]:>20} {row[2]:>20} {row[3]:>10}")
    return rows


if __name__ == "__main__":
    main()
