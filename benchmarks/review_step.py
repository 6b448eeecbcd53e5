"""The review step of a cycle at scale: store the pool's outputs, pair them with the previous
cycle's, choose a batch, queue it; with pools of 10,000, 30,000 and 100,000 items.

    .venv/bin/python benchmarks/review_step.py

For each pool size, a fresh project database holds a previous cycle's outputs for the same
inputs; the figures are the current cycle's review step, stage by stage, through the same code a
cycle runs (``Store.add_outputs``, ``pairing.attach_previous``, the configured sampler's
``select`` (``least_confident`` with its defaults: batch spread by k-means over the embeddings,
cold-start rule), ``Store.enqueue``), and the time per 1,000 items, which stays flat when the
step is linear in the pool. The predictions are synthetic (150 labels, Dirichlet-distributed
probabilities, 384-dimensional embeddings) so that the step is measured alone; model prediction
on the pool is timed separately below, with the packaged MiniLM, on 250 and 1,000 inputs.

It also shows the query plan of ``pairing.previous_outputs`` (the self-join of ``outputs`` on
``input``) with migration m007's ``outputs_input`` index and without it, and times the join
both ways on a pool of 2,000: the index turns a scan of the previous cycle per output into
one lookup. The machine is shared: the load average is printed beside the figures.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

POOLS = (10_000, 30_000, 100_000)
JOIN_POOL = 2_000  # the join without the index is quadratic: timed on a small pool
LABELS = [f"intent_{n:03d}" for n in range(150)]
BATCH = 200


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def predictions(count: int, seed: int, with_scores: bool = True):
    import numpy as np

    from tuneloop.components import Example, Prediction

    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.full(len(LABELS), 0.05), size=count)
    embeddings = rng.normal(size=(count, 384)).astype(np.float32)
    examples, made = [], []
    for index in range(count):
        row = probabilities[index]
        best = int(row.argmax())
        example = Example(input=f"utterance number {index} about {LABELS[index % 150]}")
        examples.append(example)
        made.append(Prediction(example_id=example.id, output=LABELS[best],
                               confidence=float(row[best]),
                               scores=({label: float(p) for label, p in zip(LABELS, row)}
                                       if with_scores else None),
                               embedding=embeddings[index]))
    return examples, made


def cycle_row(store) -> int:
    return store.create_cycle(project="bench", task="classification", seed=1, config={},
                              plugins=[], base_model="m", start_model="m", parent_id=None)


def review_step(folder: Path, count: int) -> dict[str, float]:
    from tuneloop.components import ReviewCandidate
    from tuneloop.pairing import attach_previous
    from tuneloop.plugins.samplers import LeastConfident
    from tuneloop.store import Store

    examples, previous = predictions(count, seed=1, with_scores=False)  # memory: labels only
    _, current = predictions(count, seed=2)
    timings: dict[str, float] = {}
    with Store(folder / f"pool-{count}.db") as store:
        first = cycle_row(store)
        store.add_outputs(first, previous, examples)
        second = cycle_row(store)
        started = time.perf_counter()
        ids = store.add_outputs(second, current, examples)
        timings["store outputs"] = time.perf_counter() - started
        started = time.perf_counter()
        candidates = [ReviewCandidate(output_id=output_id, example_id=example.id,
                                      input=example.input, output=prediction.output,
                                      confidence=prediction.confidence, scores=prediction.scores,
                                      embedding=prediction.embedding)
                      for output_id, example, prediction in zip(ids, examples, current)]
        attach_previous(store, candidates, second, first)
        timings["pair with previous"] = time.perf_counter() - started
        assert all(candidate.previous_output is not None for candidate in candidates)
        started = time.perf_counter()
        chosen = LeastConfident().select(candidates, BATCH, random.Random(f"1:{second}"))
        timings["choose 200"] = time.perf_counter() - started
        started = time.perf_counter()
        store.enqueue(second, [candidate.output_id for candidate in chosen], "least_confident",
                      1)
        timings["queue"] = time.perf_counter() - started
    return timings


def join_plan(folder: Path) -> None:
    """EXPLAIN QUERY PLAN of the previous-outputs join, with and without the m007 index, and
    the join timed both ways on the smallest pool's database."""
    import sqlite3

    from tuneloop.store import Store

    review_step(folder, JOIN_POOL)
    path = folder / f"pool-{JOIN_POOL}.db"
    sql = ("SELECT new.id AS output_id, old.id, old.output, old.confidence, old.scores "
           "FROM outputs new JOIN outputs old ON old.input = new.input AND old.cycle_id = ? "
           "AND old.candidate = 0 WHERE new.cycle_id = ? AND new.candidate = 0 ORDER BY old.id")
    with Store(path) as store:
        columns = {row["name"] for row in store.query("PRAGMA table_info(outputs)")}
    if "candidate" not in columns:
        sql = sql.replace(" AND old.candidate = 0", "").replace(" AND new.candidate = 0", "")
    for label in ("with outputs_input (m007)", "without it"):
        db = sqlite3.connect(str(path))
        if label == "without it":
            db.execute("DROP INDEX IF EXISTS outputs_input")
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, [1, 2])]
        started = time.perf_counter()
        rows = len(db.execute(sql, [1, 2]).fetchall())
        seconds = time.perf_counter() - started
        db.close()
        print(f"  {label}: {rows} pairs in {seconds:.2f} s ({load()}); plan: {' | '.join(plan)}")


def predict_throughput() -> None:
    """The classification trainer's predict on 250 and 1,000 inputs: per-item time stays flat."""
    import _training_common as common

    from tuneloop.components import Example
    from tuneloop.plugins.trainers.classification import SequenceClassificationTrainer
    from tuneloop.testing import cycle_context

    with tempfile.TemporaryDirectory(prefix="tuneloop-predict-") as folder:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model_dir = Path(folder) / "model"
        AutoModelForSequenceClassification.from_pretrained(
            common.minilm(), num_labels=len(LABELS)).save_pretrained(model_dir)
        AutoTokenizer.from_pretrained(common.minilm()).save_pretrained(model_dir)
        context = cycle_context(Path(folder) / "run", task="classification",
                                start_model=str(model_dir), labels=LABELS)
        trainer = SequenceClassificationTrainer()
        texts = [text for text, _ in common.clinc("train", 1000, seed=3)]
        for count in (250, 1000):
            examples = [Example(input=text) for text in texts[:count]]
            started = time.perf_counter()
            trainer.predict(str(model_dir), examples, context)
            seconds = time.perf_counter() - started
            print(f"  predict {count:>5} inputs: {seconds:6.1f} s, "
                  f"{1000 * seconds / count:6.1f} ms per item ({load()})")


def main() -> None:
    from tuneloop import threads

    print(f"review step (k = {BATCH}), {os.cpu_count()} CPU cores, {load()} at start, "
          f"torch threads {threads.configure()}")
    stages = ("store outputs", "pair with previous", "choose 200", "queue")
    print(f"{'pool':>8}" + "".join(f"{stage:>20}" for stage in stages)
          + f"{'total':>9}{'per 1k':>9}  load")
    with tempfile.TemporaryDirectory(prefix="tuneloop-review-step-") as folder:
        for count in POOLS:
            timings = review_step(Path(folder), count)
            total = sum(timings.values())
            print(f"{count:>8}" + "".join(f"{timings[stage]:>19.2f}s" for stage in stages)
                  + f"{total:>8.1f}s{1000 * total / count:>8.3f}s  {load()}", flush=True)
        print("previous-outputs join (pairing.previous_outputs):")
        join_plan(Path(folder))
    import _training_common as common

    if common.CLINC150.exists():
        print("model prediction on the review pool (packaged MiniLM):")
        predict_throughput()


if __name__ == "__main__":
    main()
