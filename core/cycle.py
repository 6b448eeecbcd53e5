"""One finetune → evaluate → review cycle, read top to bottom.

    prepare data  (sources → cleaners → split → augmenters → feedback)   nothing written yet
    open cycle    (row 'running', cycle_started, data_prepared)
    train         (trainer + regularizers; validation during training)  → 'trained'
    evaluate      (metrics on validation and test; human metrics)       → 'evaluated'
    review        (outputs on the review split, sampler fills the queue)
    promote       (gate rules; model registry; lineage)                 → 'done'

Data is prepared before the cycle row exists, so a bad input file fails with its one-line error
and leaves the database as it was. After that, any failure marks the row 'failed' with the error,
fires ``cycle_failed`` and propagates: no cycle is ever left half-written as 'running'.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tuneloop.components import Example, Prediction, ReviewCandidate
from tuneloop.config import ProjectConfig, instantiate
from tuneloop.context import CycleContext, Progress
from tuneloop.errors import DataError, TuneloopError
from tuneloop.plugin_manager import blame, call_hook, plugin_infos
from tuneloop.store import Store


@dataclass
class PreparedData:
    """The splits a cycle trains and evaluates on, with the report of how they were made."""

    splits: dict[str, list[Example]]
    new_assignments: dict[str, str]
    feedback_uses: list[tuple[int, str, str]]  # (rating id, policy, example id)
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class CycleResult:
    cycle_id: int
    status: str
    model_path: str | None
    metrics: dict[str, dict[str, float]]
    promoted: bool
    reasons: list[str]
    ratings_used: int
    queued: int
    timings: dict[str, float]


# --------------------------------------------------------------------------------------------------
# Data preparation (read-only: nothing is written until every input has been read and checked)
# --------------------------------------------------------------------------------------------------


def prepare_data(config: ProjectConfig, found: Any, store: Store | None) -> PreparedData:
    """Load, clean, split, augment, and add feedback examples; return the splits and a report."""
    from tuneloop.splitting import assign_splits, split_summary

    report: dict[str, Any] = {"sources": {}, "removed": {}}

    # 1. Sources: every record through the configured field mapping.
    examples: list[Example] = []
    for ref in config.data.sources:
        source = instantiate(found, "data_sources", ref, config)
        with guard(found, "data_sources", ref.name, "load"):
            loaded = list(source.load())
        report["sources"][ref.options.get("path", ref.name)] = len(loaded)
        examples.extend(loaded)

    # 2. Cleaners, in the configured order; each removal is counted with its reason.
    for ref in config.data.cleaners:
        cleaner = instantiate(found, "cleaners", ref, config)
        removed: dict[str, int] = {}

        def count(example: Example, reason: str, removed: dict[str, int] = removed) -> None:
            removed[reason] = removed.get(reason, 0) + 1

        with guard(found, "cleaners", ref.name, "clean"):
            examples = list(cleaner.clean(examples, count))
        report["removed"][ref.name] = removed
    if not examples:
        raise DataError("data", "no examples left after cleaning; check data.sources and cleaners")

    # 3. Labels must be known and allowed before splitting.
    labels = label_set(config, examples)

    # 4. Split: persisted assignments keep every earlier example on its side.
    known = store.split_assignments() if store is not None else {}
    splits, new_assignments = assign_splits(examples, config.data.split.fractions(),
                                            config.data.split.seed, known)
    # Unlabeled inputs can be reviewed (experts label them) but neither trained nor scored on.
    for split in ("train", "validation", "test"):
        labeled = [example for example in splits[split] if example.target is not None]
        if len(labeled) < len(splits[split]):
            report.setdefault("unlabeled_left_out", {})[split] = len(splits[split]) - len(labeled)
        splits[split] = labeled

    # 5. Augment the training split only; augmented copies inherit the original's split.
    rng = random.Random(config.data.split.seed)
    for ref in config.data.augmenters:
        augmenter = instantiate(found, "augmenters", ref, config)
        with guard(found, "augmenters", ref.name, "augment"):
            added = list(augmenter.augment(list(splits["train"]), rng))
        for example in added:
            example.split = "train"
            example.provenance.setdefault("augmenter", ref.name)
        splits["train"].extend(added)
        report.setdefault("augmented", {})[ref.name] = len(added)

    # 6. Feedback: expert ratings become training examples, never crossing into held-out splits.
    feedback_uses: list[tuple[int, str, str]] = []
    if store is not None:
        held_out = {key for key, split in {**known, **new_assignments}.items()
                    if split in ("validation", "test")}
        feedback_uses, refused = add_feedback(config, found, store, splits, held_out, labels)
        report["feedback"] = {"ratings_used": len({use[0] for use in feedback_uses}),
                              "examples": len(feedback_uses), "refused_held_out": refused}

    report["labels"] = labels
    report["splits"] = split_summary(splits)
    return PreparedData(splits, new_assignments, feedback_uses, report)


def label_set(config: ProjectConfig, examples: list[Example]) -> list[str] | None:
    """The classification label set: configured, or every label in the data (sorted)."""
    if config.task != "classification":
        return None
    seen = sorted({example.target for example in examples if example.target is not None})
    if config.data.labels is None:
        return seen
    unknown = [label for label in seen if label not in config.data.labels]
    if unknown:
        raise DataError("data", f"labels not in data.labels: {', '.join(unknown[:5])}")
    return list(config.data.labels)


def add_feedback(config: ProjectConfig, found: Any, store: Store,
                 splits: dict[str, list[Example]], held_out: set[str],
                 labels: list[str] | None) -> tuple[list[tuple[int, str, str]], int]:
    """Run the feedback policies over ratings and add their examples to the training split.

    Ratings already used by an earlier (not failed) cycle are not offered again unless the next
    cycle starts from the base model, which has not learnt from them.
    """
    unused_only = config.model.start_from == "promoted"
    ratings = store.current_ratings(unused_only=unused_only)
    uses: list[tuple[int, str, str]] = []
    refused = 0
    for ref in config.feedback.policies:
        policy = instantiate(found, "feedback_policies", ref, config)
        with guard(found, "feedback_policies", ref.name, "examples"):
            offered = list(policy.examples(ratings, config.task))
        for rating_id, example in offered:
            if example.split_key in held_out:
                refused += 1  # a validation/test input must never be trained on
                continue
            if labels is not None and example.target not in labels:
                refused += 1
                continue
            example.split = "train"
            example.provenance.setdefault("kind", "feedback")
            example.provenance.setdefault("rating_id", rating_id)
            example.provenance.setdefault("policy", ref.name)
            splits["train"].append(example)
            uses.append((rating_id, ref.name, example.id))
    return uses, refused


# --------------------------------------------------------------------------------------------------
# The cycle
# --------------------------------------------------------------------------------------------------


def run_cycle(config: ProjectConfig, *, quiet: bool = False,
              echo: Callable[[str], None] = lambda message: None) -> CycleResult:
    """Run one cycle for ``config``; returns what happened. Raises TuneloopError on bad input."""
    from tuneloop import registries

    found = registries.build()
    timings: dict[str, float] = {}
    store = Store(config.database_path)
    try:
        # -- prepare data (nothing written) ---------------------------------------------------
        started = time.perf_counter()
        echo("Preparing data")
        prepared = prepare_data(config, found, store)
        timings["data"] = time.perf_counter() - started
        parent = store.latest_cycle(config.project, status="done")
        start_model = choose_start_model(config, store)
        trainer = instantiate(found, "trainers", config.trainer_ref, config)
        regularizers = [instantiate(found, "regularizers", ref, config)
                        for ref in config.training.regularizers]
        metrics = [instantiate(found, "metrics", ref, config) for ref in config.metric_refs]
        sampler = instantiate(found, "review_samplers", config.review.sampler, config)

        # -- open the cycle ----------------------------------------------------------------------
        cycle_id = store.create_cycle(
            project=config.project, task=config.task, seed=config.training.seed,
            config=config.snapshot(), plugins=[plugin_record(info) for info in plugin_infos()],
            base_model=config.model_location(), start_model=start_model,
            parent_id=parent["id"] if parent else None)
        run_dir = config.runs_path / f"cycle-{cycle_id}"
        context = CycleContext(
            cycle_id=cycle_id, config=config, store=store, run_dir=run_dir,
            start_model=start_model, seed=config.training.seed,
            labels=prepared.report.get("labels"), metrics=metrics, progress=Progress(quiet),
            log_callback=lambda step, logs: stream_training_log(context, step, logs))
        try:
            return _run_stages(context, found, prepared, parent, trainer, regularizers, metrics,
                               sampler, timings, echo)
        except BaseException as error:
            record_failure(store, cycle_id, error, timings)
            try:
                call_hook("cycle_failed", cycle=context, error=error)
            except Exception as hook_error:  # never let a watcher hide the real error
                echo(f"cycle_failed hook raised too: {one_line(hook_error)}")
            raise
    finally:
        store.close()


def _run_stages(context: CycleContext, found: Any, prepared: PreparedData,
                parent: dict[str, Any] | None,
                trainer: Any, regularizers: list[Any], metrics: list[Any], sampler: Any,
                timings: dict[str, float], echo: Callable[[str], None]) -> CycleResult:
    config, store, cycle_id = context.config, context.store, context.cycle_id
    assert store is not None
    store.update_cycle(cycle_id, run_dir=str(context.run_dir), components=component_record(config, found),
                       stats=prepared.report)
    store.add_split_assignments(prepared.new_assignments, cycle_id)
    store.add_examples(cycle_id, prepared.splits)
    store.record_feedback_usage(cycle_id, prepared.feedback_uses)
    call_hook("cycle_started", cycle=context)
    call_hook("data_prepared", cycle=context, splits=prepared.splits)

    # -- train -----------------------------------------------------------------------------------
    started = time.perf_counter()
    echo(f"Training cycle {cycle_id} from {context.start_model}")
    with guard(found, "trainers", config.trainer_ref.name, "train"):
        result = trainer.train(context, prepared.splits, regularizers)
    timings["train"] = time.perf_counter() - started
    store.update_cycle(cycle_id, status="trained", model_path=result.model_dir, timings=timings)
    call_hook("training_finished", cycle=context, result=result)

    # -- evaluate: validation (selection) and test (reported only) -----------------------------------
    started = time.perf_counter()
    figures: dict[str, dict[str, float]] = {}
    for split in ("validation", "test"):
        examples = prepared.splits.get(split) or []
        if not examples:
            continue
        with guard(found, "trainers", config.trainer_ref.name, "predict"):
            predictions = trainer.predict(result.model_dir, examples, context)
        figures[split] = compute_metrics(found, metrics, predictions, examples)
        store.add_metrics(cycle_id, split, figures[split])
    if parent is not None:
        human = human_metrics(store, parent["id"])
        if human:
            store.add_metrics(parent["id"], "human", human)
    timings["evaluate"] = time.perf_counter() - started
    store.update_cycle(cycle_id, status="evaluated", timings=timings)
    call_hook("evaluation_finished", cycle=context, metrics=figures)

    # -- outputs for review --------------------------------------------------------------------------
    started = time.perf_counter()
    review_examples = examples_for_review(store, prepared.splits.get("review") or [])
    predictions: list[Prediction] = []
    queued = 0
    if review_examples:
        with guard(found, "trainers", config.trainer_ref.name, "predict"):
            predictions = trainer.predict(result.model_dir, review_examples, context)
        output_ids = store.add_outputs(cycle_id, predictions, review_examples)
        candidates = [ReviewCandidate(output_id=output_id, example_id=example.id,
                                      input=example.input, output=prediction.output,
                                      confidence=prediction.confidence, scores=prediction.scores)
                      for output_id, example, prediction
                      in zip(output_ids, review_examples, predictions)]
        with guard(found, "review_samplers", config.review.sampler.name, "select"):
            chosen = sampler.select(candidates, config.review.size, random.Random(context.seed))
        store.enqueue(cycle_id, [candidate.output_id for candidate in chosen],
                      config.review.sampler.name, config.review.ratings_per_item)
        queued = len(chosen)
    timings["review"] = time.perf_counter() - started
    call_hook("outputs_stored", cycle=context, predictions=predictions)

    # -- promotion gate --------------------------------------------------------------------------
    from tuneloop.promotion import decide

    promoted, reasons = decide(config, store, cycle_id, figures)
    store.add_model(cycle_id, result.model_dir, figures, "promoted" if promoted else "rejected",
                    reasons)
    store.update_cycle(cycle_id, status="done", finished_at=_now(), timings=timings)
    call_hook("cycle_finished", cycle=context, promoted=promoted)
    ratings_used = len({use[0] for use in prepared.feedback_uses})
    return CycleResult(cycle_id, "done", result.model_dir, figures, promoted, reasons,
                       ratings_used, queued, timings)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def choose_start_model(config: ProjectConfig, store: Store) -> str:
    """The latest promoted model when the config says so and one exists, else the base model."""
    if config.model.start_from == "promoted":
        promoted = store.promoted_models(config.project)
        if promoted and Path(promoted[-1]["path"]).exists():
            return promoted[-1]["path"]
    return config.model_location()


def compute_metrics(found: Any, metrics: list[Any], predictions: list[Prediction],
                    references: list[Example]) -> dict[str, float]:
    """Run every metric; a metric that returns something other than numbers is named."""
    from tuneloop.errors import PluginError

    figures: dict[str, float] = {}
    for metric in metrics:
        plugin = found["metrics"].entry(metric.name).plugin
        with guard(found, "metrics", metric.name, "compute"):
            values = metric.compute(predictions, references)
        if not isinstance(values, dict):
            raise PluginError(plugin, f'metric "{metric.name}" returned '
                                      f"{type(values).__name__}, not a dict of numbers")
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                try:
                    value = float(value)  # numpy scalars
                except (TypeError, ValueError):
                    raise PluginError(plugin, f'metric "{metric.name}" value {name!r} is '
                                              f"{type(value).__name__}, not a number") from None
            figures[name] = float(value)
    return figures


def guard(found: Any, kind: str, name: str, method: str) -> Any:
    """Blame the plugin that registered a component for an exception from one of its methods."""
    registry = found[kind]
    return blame(registry.entry(name).plugin, f'{registry.label} "{name}" {method}')


def human_metrics(store: Store, cycle_id: int) -> dict[str, float]:
    """What the experts thought of a cycle's outputs: approval rate and corrections per output."""
    ratings = [rating for rating in store.current_ratings(unused_only=False, cycle_ids=[cycle_id])
               if rating.verdict in ("approve", "reject")]
    if not ratings:
        return {}
    approved = sum(rating.verdict == "approve" for rating in ratings)
    corrected = sum(rating.corrected is not None for rating in ratings)
    scores = [rating.score for rating in ratings if rating.score is not None]
    figures = {"ratings": float(len(ratings)), "approval_rate": approved / len(ratings),
               "corrections_per_output": corrected / len(ratings)}
    if scores:
        figures["mean_score"] = sum(scores) / len(scores)
    return figures


def examples_for_review(store: Store, examples: list[Example]) -> list[Example]:
    """Review-split examples no expert has judged yet (judged ones are already training data)."""
    judged = {row["input"] for row in store.query(
        "SELECT DISTINCT o.input FROM ratings r JOIN outputs o ON o.id = r.output_id "
        "WHERE r.verdict IN ('approve', 'reject')")}
    return [example for example in examples if example.input not in judged]


def stream_training_log(context: CycleContext, step: int, logs: dict[str, float]) -> None:
    numeric = {name: float(value) for name, value in logs.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if context.store is not None and numeric:
        context.store.add_metrics(context.cycle_id, "train", numeric, step=step)
    call_hook("training_log", cycle=context, step=step, logs=numeric)


def plugin_record(info: Any) -> dict[str, Any]:
    return {"name": info.name, "version": info.version, "builtin": info.builtin,
            "distribution": info.distribution}


def component_record(config: ProjectConfig, found: Any) -> dict[str, Any]:
    """The components a cycle used and which plugin gave each, so a result traces to its code."""
    record: dict[str, list[dict[str, Any]]] = {}

    def add(kind: str, ref: Any) -> None:
        entry = found[kind].entry(ref.name)
        record.setdefault(kind, []).append(
            {"name": ref.name, "plugin": entry.plugin, "options": ref.options})

    for ref in config.data.sources:
        add("data_sources", ref)
    for kind, refs in (("cleaners", config.data.cleaners), ("augmenters", config.data.augmenters),
                       ("regularizers", config.training.regularizers),
                       ("metrics", config.metric_refs),
                       ("feedback_policies", config.feedback.policies)):
        for ref in refs:
            add(kind, ref)
    add("trainers", config.trainer_ref)
    add("review_samplers", config.review.sampler)
    return record


def record_failure(store: Store, cycle_id: int, error: BaseException,
                   timings: dict[str, float]) -> None:
    """Mark the cycle failed; a model it had already promoted is withdrawn."""
    store.update_cycle(cycle_id, status="failed", error=one_line(error), finished_at=_now(),
                       timings=timings)
    with store.write() as db:
        db.execute("UPDATE models SET stage = 'rejected', reasons = json_insert(reasons, '$[#]', "
                   "'withdrawn: the cycle failed after the gate') WHERE cycle_id = ? "
                   "AND stage = 'promoted'", [cycle_id])


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if not isinstance(error, TuneloopError) else text


def _now() -> str:
    from tuneloop.store import now

    return now()
