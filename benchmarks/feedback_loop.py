"""Does expert feedback make the next model better? CLINC150, simulated experts, three arms.

    .venv/bin/python benchmarks/feedback_loop.py [--quick]

CLINC150 (in-scope intents): 10 labelled utterances per intent (``_fewshot``, split into train and
validation by the fractions), the official test split pinned to ``test``, and the rest of the
training split (13,500 utterances) as an unlabelled review pool (``split: review``). Cycle 1 trains
the default recipe (``tuneloop init``'s) and queues 200 outputs of the pool. Then, for 3 feedback
cycles, an oracle expert rates the queue through the same ``Store`` calls the review app makes
(``next_queue_item``, ``add_rating``): it approves a right label and rejects a wrong one with the
correct label (CLINC150's own), and the next cycle learns from every rating so far (policies
``corrections`` and ``approvals``, as the init config writes them). Three arms start from the same
cycle 1 (its project folder is copied):

- **no feedback**: the next cycle simply runs again (continuing from the promoted model);
- **random**: the queue is a uniform random sample of the pool (for cycle 1, the expert rates a
  random sample of cycle 1's stored outputs, what ``random`` would have queued);
- **configured**: the sampler the init config names (``least_confident``: calibrated confidences,
  the batch spread by k-means over the encoder's embeddings, cold-start rule).

It prints in-scope test accuracy per cycle per arm, and each arm's gain over "no feedback".
``--quick`` (a smoke run, not the figure): 40-step budgets, 300 test utterances, a pool of 1,000,
2 feedback cycles of 60 ratings. The load average is printed beside the figures.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _fewshot as fewshot  # noqa: E402
import _training_common as common  # noqa: E402

FULL = {"cycles": 3, "ratings": 200, "pool": None, "test": None, "steps": None}
QUICK = {"cycles": 2, "ratings": 60, "pool": 1_000, "test": 300, "steps": 40}


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def training_section(settings: dict) -> dict:
    training = copy.deepcopy(fewshot.shipped_config()["training"])
    if settings["steps"] is not None:  # a fixed small budget, validated twice
        training["trainer"] = {**training["trainer"], "steps": settings["steps"],
                               "evaluations": 2}
    return training


def write_project(folder: Path, settings: dict, sampler) -> Path:
    shipped = fewshot.shipped_config()
    path = fewshot.project(folder, training_section(settings), pool=True,
                           test_limit=settings["test"],
                           review={"size": settings["ratings"], "sampler": sampler,
                                   "ratings_per_item": 1},
                           feedback=shipped["feedback"])
    if settings["pool"] is not None:  # a smaller pool: keep its first lines
        pool = folder / "pool.jsonl"
        lines = pool.read_text(encoding="utf-8").splitlines()[:settings["pool"]]
        pool.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def set_sampler(path: Path, sampler) -> None:
    import yaml

    config = yaml.safe_load(path.read_text())
    config["review"]["sampler"] = sampler
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def oracle_rates(database: Path, truth: dict[str, str], ratings: int,
                 output_ids: list[int] | None = None) -> dict[str, int]:
    """The expert: rates queue items (or the given outputs) with CLINC150's own labels."""
    from tuneloop.auth import create_reviewer
    from tuneloop.store import Store

    counts = {"approve": 0, "reject": 0}
    with Store(database) as store:
        reviewer = store.reviewer("oracle")
        reviewer_id = reviewer["id"] if reviewer else create_reviewer(store, "oracle",
                                                                      "oracle-password-1")
        for _ in range(ratings):
            if output_ids is not None:
                if not output_ids:
                    break
                item = store.output(output_ids.pop(0))
                output_id = item["id"]
            else:
                item = store.next_queue_item(reviewer_id)
                if item is None:
                    break
                output_id = item["output_id"] if "output_id" in item else item["id"]
                item = store.output(output_id)
            gold = truth[item["input"]]
            if item["output"] == gold:
                store.add_rating(reviewer_id=reviewer_id, output_id=output_id, verdict="approve")
                counts["approve"] += 1
            else:
                store.add_rating(reviewer_id=reviewer_id, output_id=output_id, verdict="reject",
                                 corrected=gold)
                counts["reject"] += 1
    return counts


def random_outputs(database: Path, cycle_id: int, count: int, seed: int) -> list[int]:
    """What the ``random`` sampler would have queued from a cycle's stored outputs."""
    from tuneloop.components import ReviewCandidate
    from tuneloop.plugins.samplers import RandomSample
    from tuneloop.store import Store

    with Store(database) as store:
        candidates = [ReviewCandidate(output_id=row["id"], example_id=row["example_id"],
                                      input=row["input"], output=row["output"])
                      for row in store.outputs(cycle_id)]
    chosen = RandomSample().select(candidates, count, random.Random(f"{seed}:{cycle_id}"))
    return [candidate.output_id for candidate in chosen]


def run(path: Path) -> tuple[float, int]:
    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle

    result = run_cycle(load_config(path), quiet=True)
    return result.metrics["test"]["accuracy"], result.cycle_id


def copy_project(source: Path, target: Path) -> Path:
    """The project after cycle 1, for another arm (database closed, so its WAL is merged)."""
    target.mkdir(parents=True)
    for name in ("tuneloop.yaml", "labelled.jsonl", "pool.jsonl", "tuneloop.db"):
        shutil.copy2(source / name, target / name)
    return target / "tuneloop.yaml"


def main(quick: bool = False) -> dict[str, list[float]]:
    if not common.CLINC150.exists():
        print(f"skipped: {common.CLINC150} is not there (CLINC150 is read in place, never copied)")
        return {}
    settings = QUICK if quick else FULL
    truth = {text: intent for text, intent in common.clinc("train")}
    configured = fewshot.shipped_config()["review"]["sampler"]
    print(f"CLINC150, {fewshot.PER_INTENT} labelled per intent, review pool "
          f"{settings['pool'] or 'the rest of train'}, {settings['cycles']} feedback cycles of "
          f"{settings['ratings']} ratings{' (QUICK: a smoke run)' if quick else ''}; "
          f"configured sampler: {configured}; {load()} at start", flush=True)
    accuracy: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="tuneloop-feedback-") as folder:
        root = Path(folder)
        first_path = write_project(root / "cycle1", settings, configured)
        started = time.perf_counter()
        first, first_id = run(first_path)
        print(f"cycle 1: test accuracy {first:.2%} ({time.perf_counter() - started:.0f} s, "
              f"{load()})", flush=True)
        for arm in ("no feedback", "random", "configured"):
            path = copy_project(root / "cycle1", root / arm.replace(" ", "-"))
            database = path.parent / "tuneloop.db"
            if arm == "random":
                set_sampler(path, "random")
            accuracy[arm] = [first]
            for cycle in range(settings["cycles"]):
                rated = {}
                if arm == "random" and cycle == 0:
                    rated = oracle_rates(database, truth, settings["ratings"],
                                         random_outputs(database, first_id, settings["ratings"],
                                                        seed=13))
                elif arm != "no feedback":
                    rated = oracle_rates(database, truth, settings["ratings"])
                started = time.perf_counter()
                figure, _ = run(path)
                accuracy[arm].append(figure)
                print(f"  {arm}: cycle {cycle + 2} test accuracy {figure:.2%} after ratings "
                      f"{rated or 'none'} ({time.perf_counter() - started:.0f} s, {load()})",
                      flush=True)
    header = "".join(f"{'cycle ' + str(n + 1):>10}" for n in range(settings["cycles"] + 1))
    print(f"{'arm':<14}{header}{'gain vs none':>14}")
    for arm, figures in accuracy.items():
        gain = figures[-1] - accuracy["no feedback"][-1]
        print(f"{arm:<14}" + "".join(f"{value:>10.2%}" for value in figures)
              + f"{gain * 100:>+13.1f}p")
    print(f"after {settings['cycles']} x {settings['ratings']} ratings: configured - random = "
          f"{(accuracy['configured'][-1] - accuracy['random'][-1]) * 100:+.1f} points; "
          f"configured - no feedback = "
          f"{(accuracy['configured'][-1] - accuracy['no feedback'][-1]) * 100:+.1f} points")
    print(common.machine())
    return accuracy


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
