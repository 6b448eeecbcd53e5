"""One finetune → evaluate → review cycle, read top to bottom.

    prepare data  (sources → cleaners → split → augmenters → feedback)   nothing written yet
    open cycle    (row 'running', cycle_started, data_prepared)
    train         (trainer + regularizers; validation during training)  → 'trained'
    evaluate      (metrics on validation and test; benchmarks of the model
                   and, once, the base model; human metrics)            → 'evaluated'
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

from tuneloop.components import Example, Prediction, ReviewCandidate, TrainResult
from tuneloop.config import ProjectConfig, instantiate
from tuneloop.context import CycleContext, Progress
from tuneloop.errors import DataError, TuneloopError
from tuneloop.evaluation import (BENCHMARK, measure_base_model, measure_model,
                                 record_predictions)
from tuneloop.human_metrics import human_metrics
from tuneloop.interface_checks import (expect_feedback, expect_predictions, expect_selection,
                                       expect_train_result)
from tuneloop.plugin_manager import blame, call_hook, plugin_infos
from tuneloop.store import Store


@dataclass
class PreparedData:
    """The splits a cycle trains and evaluates on, with the report of how they were made."""

    splits: dict[str, list[Example]]
    new_assignments: dict[str, str]
    feedback_uses: list[tuple[int, str, str]]  # (rating id, policy, example id)
    report: dict[str, Any] = field(default_factory=dict)
    requeue: list[tuple[tuple[int, int | None], int]] = field(default_factory=list)  # disagreed


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
    """Load, clean, split, augment, add feedback examples and check for leaks; return the splits
    and a report of every step (``tuneloop data inspect`` shows it)."""
    from tuneloop.data_pipeline import (DataPipeline, Services, augment, check_labels,
                                        counts_by_source, no_examples_error)
    from collections import Counter

    from tuneloop import data_problems
    from tuneloop.leakage import check_leakage
    from tuneloop.splitting import assign_splits, split_summary

    # 1-2. Sources (mixed by fraction, max_examples, weight) streamed through the cleaners in the
    #      configured order: no file is held whole; every skip, removal and fix is counted.
    services = Services(config)
    pipeline = DataPipeline(config, found, services)
    examples = list(pipeline.examples())
    report: dict[str, Any] = pipeline.report()
    if not examples:
        raise no_examples_error(report)

    # 3. Labels must be known and allowed before splitting; empty targets are counted.
    examples = data_problems.settle_empty_targets(examples, report)
    examples = check_labels(config, examples, report)
    labels = label_set(config, examples)

    # 4. Split: persisted assignments keep every earlier example on its side.
    known = store.split_assignments() if store is not None else {}
    conflicts: list[str] = []
    pins = Counter((example.source or "data", example.split) for example in examples
                   if example.split is not None)
    split_stats: dict[str, Any] = {}
    splits, new_assignments = assign_splits(
        examples, config.data.split.fractions(), config.data.split.seed, known,
        by_column=config.data.split.by == "column", copy=False,  # the pipeline's own objects
        on_conflict=lambda example, pinned, placed: conflicts.append(
            f"{example.source or 'data'}: pinned to {pinned}, put in {placed}"),
        stratify=config.data.split.stratify_by_label(config.task), stats=split_stats)
    report["split_method"] = split_stats
    if conflicts:
        report["split_conflicts"] = {"count": len(conflicts), "examples": conflicts[:10]}
    # Unlabeled inputs can be reviewed (experts label them) but neither trained nor scored on.
    for split in ("train", "validation", "test"):
        labeled = [example for example in splits[split] if example.target is not None]
        if len(labeled) < len(splits[split]):
            report.setdefault("unlabeled_left_out", {})[split] = len(splits[split]) - len(labeled)
        splits[split] = labeled

    # 5. Augment the training split only; augmented copies inherit the original's split.
    augment(config, found, services, splits, report)

    # 6. Feedback: expert ratings become training examples, never crossing into held-out splits.
    feedback_uses: list[tuple[int, str, str]] = []
    requeue: list[tuple[tuple[int, int | None], int]] = []
    if store is not None:
        held_out = {key for key, split in {**known, **new_assignments}.items()
                    if split in ("validation", "test")}
        feedback_uses, refused, agreed = add_feedback(config, found, store, splits, held_out,
                                                      labels)
        never_used = {rating.id for rating in store.current_ratings(unused_only=True)}
        report["feedback"] = {"ratings_used": len({use[0] for use in feedback_uses}),
                              "new_ratings": len({use[0] for use in feedback_uses
                                                  if use[0] in never_used}),
                              "examples": len(feedback_uses), "refused_held_out": refused,
                              "held_back_items": len(agreed.held),
                              "outvoted_ratings": len(agreed.outvoted)}
        requeue = agreed.requeue

    # 7. Leakage: no input (or near copy of one) on both sides of an evaluation split.
    leakage = config.data.leakage
    report["leakage"] = check_leakage(splits, leakage.action, leakage.near_threshold)
    if report["leakage"]["dropped"]:
        trained = {example.id for example in splits["train"]}
        feedback_uses = [use for use in feedback_uses if use[2] in trained]

    report["labels"] = labels
    report["splits"] = split_summary(splits)
    report["by_source"] = counts_by_source(splits)
    # 8. What must not pass silently: empty evaluation splits, empty targets, unseen labels
    #    (the cycle stops on errors before its row is written; data inspect shows them all).
    report["unseen_labels"] = data_problems.unseen_labels(config, splits)
    report["problems"] = data_problems.collect(config, splits, report, len(examples), pins,
                                               split_stats)
    return PreparedData(splits, new_assignments, feedback_uses, report, requeue)


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
                 labels: list[str] | None) -> tuple[list[tuple[int, str, str]], int, Any]:
    """Run the feedback policies over ratings and add their examples to the training split.

    Every current rating of every earlier cycle is offered, whichever model the cycle starts
    from: a model that continues from the promoted one and trains on the new ratings alone drifts
    away from what the older ones taught it, so old and new train together, and each cycle
    records in ``feedback_usage`` every rating it trained on (the lineage). Items the experts
    disagree on are held back, and outvoted ratings left out (``tuneloop.consensus``).
    """
    from tuneloop.consensus import agreed_ratings

    agreed = agreed_ratings(store, store.current_ratings(unused_only=False),
                            task=config.task, min_agreement=config.feedback.min_agreement,
                            requeue=config.feedback.on_disagreement == "requeue")
    ratings = agreed.kept
    uses: list[tuple[int, str, str]] = []
    refused = 0
    for ref in config.feedback.policies:
        policy = instantiate(found, "feedback_policies", ref, config)
        with guard(found, "feedback_policies", ref.name, "examples"):
            offered = list(policy.examples(ratings, config.task))
        expect_feedback(found, ref.name, offered, ratings)
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
    return uses, refused, agreed


# --------------------------------------------------------------------------------------------------
# The cycle
# --------------------------------------------------------------------------------------------------


def run_cycle(config: ProjectConfig, *, quiet: bool = False,
              echo: Callable[[str], None] = lambda message: None,
              resume: bool = False) -> CycleResult:
    """Run one cycle for ``config``; returns what happened. Raises TuneloopError on bad input.

    ``resume`` continues the project's latest interrupted cycle (``tuneloop.resume``) instead of
    opening a new one. Under ``torchrun`` every process prepares the data and trains; only the main
    process writes to the database (``tuneloop.distributed``).
    """
    from tuneloop import data_problems, distributed, registries
    from tuneloop import resume as resuming

    found = registries.build()
    timings: dict[str, float] = {}
    main = distributed.is_main_process()
    distributed.start()
    if not main:
        quiet, echo = True, (lambda message: None)
        distributed.barrier()  # the main process creates and migrates the database first
    store = Store(config.database_path)
    if main:
        distributed.barrier()
    try:
        resumed = (distributed.agree(lambda: resuming.cycle_to_resume(store, config.project))
                   if resume else None)
        # -- prepare data (nothing written) ---------------------------------------------------
        started = time.perf_counter()
        echo("Preparing data")
        prepared = prepare_data(config, found, store)
        # an empty evaluation split (or rows the config refuses) stops here, before any row
        data_problems.stop_on_errors(prepared.report)
        for warning in data_problems.warnings(prepared.report):
            data_problems.logger.warning("warning: %s", warning)
        prepared.report["process"] = resuming.process_record()
        # torch threads from the cores this process may use (TUNELOOP_THREADS overrides)
        from tuneloop import threads

        prepared.report["threads"] = threads.configure(trainer_threads(config))
        timings["data"] = time.perf_counter() - started
        distributed.barrier()  # every process has read the data before the main one writes
        parent = store.latest_cycle(config.project, status="done")
        start_model = choose_start_model(config, store)
        if resumed is not None:  # continue as the cycle began: same parent, same start model
            parent = store.cycle(resumed["parent_id"]) if resumed["parent_id"] else None
            start_model = resumed["start_model"]
        trainer = instantiate(found, "trainers", config.trainer_ref, config)
        regularizers = [instantiate(found, "regularizers", ref, config)
                        for ref in config.training.regularizers]
        metrics = [instantiate(found, "metrics", ref, config) for ref in config.metric_refs]
        sampler = instantiate(found, "review_samplers", config.review.sampler, config)

        # -- open the cycle (or reopen the interrupted one) -----------------------------------------
        def open_cycle() -> int:
            if resumed is not None:
                # killed before its data was recorded: record it now, as a new cycle would
                resumed["data_recorded"] = resuming.check_same_data(store, resumed["id"],
                                                                    prepared.splits)
                resuming.reopen(store, resumed)
                return int(resumed["id"])
            return store.create_cycle(
                project=config.project, task=config.task, seed=config.training.seed,
                config=config.snapshot(), plugins=[plugin_record(info) for info in plugin_infos()],
                base_model=config.model_location(), start_model=start_model,
                parent_id=parent["id"] if parent else None,
                stats={"process": prepared.report["process"]})

        cycle_id = distributed.agree(open_cycle)
        run_dir = config.runs_path / f"cycle-{cycle_id}"
        context = CycleContext(
            cycle_id=cycle_id, config=config, store=store, run_dir=run_dir,
            start_model=start_model, seed=config.training.seed,
            labels=prepared.report.get("labels"),
            metrics=[metric for metric in metrics if not metric.measures_model],  # on predictions
            progress=Progress(quiet),
            log_callback=lambda step, logs: stream_training_log(context, step, logs))
        if not main:  # another process of a multi-process run: it trains, the main one records
            context.log_callback = None
            if resumed is not None and resumed["resume_stage"] != "train":
                return CycleResult(cycle_id, "worker", None, {}, False, [], 0, 0, timings)
            return train_as_worker(context, found, prepared, trainer, regularizers, timings)
        try:
            return _run_stages(context, found, prepared, parent, trainer, regularizers, metrics,
                               sampler, timings, echo, resumed)
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
                timings: dict[str, float], echo: Callable[[str], None],
                resumed: dict[str, Any] | None = None) -> CycleResult:
    from tuneloop import resume as resuming

    config, store, cycle_id = context.config, context.store, context.cycle_id
    assert store is not None
    # where a resumed cycle starts: "train", "evaluate", "review" or "promote" (tuneloop.resume)
    stage = resumed["resume_stage"] if resumed is not None else "train"
    if resumed is None or not resumed.get("data_recorded"):
        # a resumed cycle recorded its data when it first started; all of it or none (one
        # transaction), so a kill here leaves a cycle that a resume records again
        with store.write():
            stats = dict(prepared.report)
            if resumed is not None:  # the resume count, the process reopen() recorded
                stats.update({key: value for key, value in
                              _stats(store.cycle(cycle_id)).items()
                              if key in ("process", "resumed")})
            store.update_cycle(cycle_id, run_dir=str(context.run_dir),
                               components=component_record(config, found), stats=stats)
            store.add_split_assignments(prepared.new_assignments, cycle_id)
            store.add_examples(cycle_id, prepared.splits)
            store.record_feedback_usage(cycle_id, prepared.feedback_uses)
            if prepared.requeue:
                from tuneloop.consensus import send_back_to_queue

                send_back_to_queue(store, prepared.requeue)
    call_hook("cycle_started", cycle=context)
    call_hook("data_prepared", cycle=context, splits=prepared.splits)

    # -- train -----------------------------------------------------------------------------------
    started = time.perf_counter()
    echo(f"Training cycle {cycle_id} from {context.start_model}")
    # the trainer never sees the test split: no selection or early stopping on it
    training_splits = {split: examples for split, examples in prepared.splits.items()
                       if split != "test"}
    if resumed is not None:  # what the interrupted attempt recorded from this stage on goes
        resuming.clear_from(store, cycle_id, stage)
    if stage != "train":  # interrupted after training: the model stands, what followed reruns
        assert resumed is not None
        result = resuming.train_result(resumed)
        echo(f"Cycle {cycle_id} had finished training: continuing with {stage} "
             f"({result.model_dir})")
    else:
        with guard(found, "trainers", config.trainer_ref.name, "train"):
            result = trainer.train(context, training_splits, regularizers)
        expect_train_result(found, config.trainer_ref.name, result)
        timings["train"] = time.perf_counter() - started
        with store.write():  # the training record and the status together
            record_training(store, cycle_id, result)
            store.update_cycle(cycle_id, status="trained", model_path=result.model_dir,
                               timings=timings)
    call_hook("training_finished", cycle=context, result=result)

    # -- evaluate: validation (selection) and test (reported only) -----------------------------------
    started = time.perf_counter()
    figures: dict[str, dict[str, float]] = {}
    model_metrics = [metric for metric in metrics if metric.measures_model]
    if stage in ("review", "promote"):  # evaluated before the interruption: the figures stand
        figures, base_figures = stored_figures(store, found, cycle_id, model_metrics, context)
    else:
        base_figures = evaluate(context, found, prepared, parent, trainer, result, metrics,
                                figures, echo)
        timings["evaluate"] = time.perf_counter() - started
        store.update_cycle(cycle_id, status="evaluated", timings=timings)
    if "validation" not in figures and "test" not in figures:  # never "done" on nothing
        raise TuneloopError(f"cycle {cycle_id} measured nothing: its validation and test splits "
                            f"are both empty (tuneloop data inspect shows why); it is failed")
    call_hook("evaluation_finished", cycle=context, metrics=figures)

    # -- outputs for review --------------------------------------------------------------------------
    started = time.perf_counter()
    predictions: list[Prediction] = []
    queued = 0
    if stage != "promote":
        predictions, queued = outputs_for_review(context, found, prepared, parent, trainer,
                                                 result, sampler)
        timings["review"] = time.perf_counter() - started
    call_hook("outputs_stored", cycle=context, predictions=predictions)

    # -- promotion gate --------------------------------------------------------------------------
    from tuneloop.promotion import decide

    promoted, reasons = decide(config, store, cycle_id, figures, base=base_figures)
    with store.write():  # the model record and "done" together
        store.add_model(cycle_id, result.model_dir, figures,
                        "promoted" if promoted else "rejected", reasons)
        store.update_cycle(cycle_id, status="done", finished_at=_now(), timings=timings)
    call_hook("cycle_finished", cycle=context, promoted=promoted)
    ratings_used = len({use[0] for use in prepared.feedback_uses})
    return CycleResult(cycle_id, "done", result.model_dir, figures, promoted, reasons,
                       ratings_used, queued, timings)


def evaluate(context: CycleContext, found: Any, prepared: PreparedData,
             parent: dict[str, Any] | None, trainer: Any, result: TrainResult,
             metrics: list[Any], figures: dict[str, dict[str, float]],
             echo: Callable[[str], None]) -> dict[str, float]:
    """The evaluation stage: figures on validation and test (into ``figures``, and stored with
    the per-example predictions), benchmarks of the model and of the base model, and the parent
    cycle's human figures (replaced: a resumed cycle computes them again). Returns the base
    model's benchmark figures."""
    config, store, cycle_id = context.config, context.store, context.cycle_id
    assert store is not None
    for split in ("validation", "test"):
        examples = prepared.splits.get(split) or []
        if not examples:
            continue
        context.predicting = split  # one answer per example: the figures score it
        with guard(found, "trainers", config.trainer_ref.name, "predict"):
            predictions = trainer.predict(result.model_dir, examples, context)
        context.predicting = None
        expect_predictions(found, config.trainer_ref.name, predictions, examples)
        figures[split] = compute_metrics(found, context.metrics, predictions, examples)
        if split == "validation" and result.best_metric is not None:
            # the selection figure (the validation loss, by default for causal LMs) is the
            # saved checkpoint's, as training measured it: the gate compares on it
            figures[split].setdefault(config.select_metric, result.best_metric)
        store.add_metrics(cycle_id, split, figures[split])
        record_predictions(store, cycle_id, split, examples, predictions)
    # benchmarks (lm-eval) measure the model itself: this cycle's, and the base model's once
    model_metrics = [metric for metric in metrics if metric.measures_model]
    base_figures: dict[str, float] = {}
    if model_metrics:
        echo("Benchmarks: " + ", ".join(metric.name for metric in model_metrics))
        figures[BENCHMARK] = measure_model(found, model_metrics, result.model_dir, context)
        store.add_metrics(cycle_id, BENCHMARK, figures[BENCHMARK])
        base_figures = measure_base_model(found, model_metrics, context)
    if parent is not None:
        human = human_metrics(store, parent["id"])
        if human:
            store.replace_final_metrics(parent["id"], "human", human)
    return base_figures


def stored_figures(store: Store, found: Any, cycle_id: int, model_metrics: list[Any],
                   context: CycleContext) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """A resumed cycle's figures as its evaluation stored them (validation, test, benchmark), and
    the base model's benchmark figures (stored once per project: read, not measured again)."""
    stored = store.final_metrics(cycle_id)
    figures = {split: stored[split] for split in ("validation", "test", BENCHMARK)
               if split in stored}
    base = measure_base_model(found, model_metrics, context) if model_metrics else {}
    return figures, base


def outputs_for_review(context: CycleContext, found: Any, prepared: PreparedData,
                       parent: dict[str, Any] | None, trainer: Any, result: TrainResult,
                       sampler: Any) -> tuple[list[Prediction], int]:
    """The review stage: the model's outputs on the review split (stored), the sampler's choice
    queued, and pairs against the parent's outputs. Returns the predictions and how many items
    were queued."""
    config, store, cycle_id = context.config, context.store, context.cycle_id
    assert store is not None
    review_examples = examples_for_review(store, prepared.splits.get("review") or [])
    if prepared.splits.get("review") and len(review_examples) < config.review.size:
        # rated inputs left the pool (they are training data now): it is running dry
        from tuneloop.data_problems import logger

        logger.warning("warning: the review split has %d inputs no expert has judged yet, fewer "
                       "than review.size (%d): add unlabelled data (a source pinned to split: "
                       "review) so the experts have something to rate", len(review_examples),
                       config.review.size)
    predictions: list[Prediction] = []
    queued = 0
    if review_examples:
        context.predicting = "review"  # a trainer may give several candidates per prompt
        with guard(found, "trainers", config.trainer_ref.name, "predict"):
            predictions = trainer.predict(result.model_dir, review_examples, context)
        context.predicting = None
        expect_predictions(found, config.trainer_ref.name, predictions, review_examples)
        output_ids = store.add_outputs(cycle_id, predictions, review_examples)
        candidates = [ReviewCandidate(output_id=output_id, example_id=example.id,
                                      input=example.input, output=prediction.output,
                                      confidence=prediction.confidence, scores=prediction.scores,
                                      embedding=prediction.embedding)
                      for output_id, example, prediction
                      in zip(output_ids, review_examples, predictions)]
        from tuneloop.pairing import attach_previous, queue_pairs

        attach_previous(store, candidates, cycle_id, parent["id"] if parent else None)
        with guard(found, "review_samplers", config.review.sampler.name, "select"):
            # seeded by the cycle too: each cycle draws its own sample, reproducibly
            chosen = sampler.select(candidates, config.review.size,
                                    random.Random(f"{context.seed}:{cycle_id}"))
        expect_selection(found, config.review.sampler.name, chosen, candidates, config.review.size)
        store.enqueue(cycle_id, [candidate.output_id for candidate in chosen],
                      config.review.sampler.name, config.review.ratings_per_item)
        queued = len(chosen)
        if config.review.pairwise:  # this cycle's answer against the previous cycle's
            queued += queue_pairs(store, cycle_id, parent["id"] if parent else None,
                                  config.review, singles_queued=len(chosen))
        if any(prediction.candidates for prediction in predictions):
            from tuneloop.pairing import queue_candidate_pairs

            # the model's candidate answers to the chosen prompts, two at a time
            queued += queue_candidate_pairs(store, cycle_id,
                                            [candidate.output_id for candidate in chosen],
                                            config.review, singles_queued=len(chosen))
    return predictions, queued


def _stats(cycle: dict[str, Any] | None) -> dict[str, Any]:
    import json

    return json.loads(cycle["stats"]) if cycle and cycle.get("stats") else {}


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def trainer_threads(config: ProjectConfig) -> int | None:
    """The trainer's ``threads`` option when it has one and the config sets it."""
    value = config.trainer_ref.options.get("threads")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


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


def examples_for_review(store: Store, examples: list[Example]) -> list[Example]:
    """Review-split examples no expert has judged yet (judged ones are already training data)."""
    judged = store.judged_inputs()
    return [example for example in examples if example.input not in judged]


def stream_training_log(context: CycleContext, step: int, logs: dict[str, float]) -> None:
    numeric = {name: float(value) for name, value in logs.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if context.store is not None and numeric:
        # transformers logs validation figures as eval_<name>: store them under their split
        for split, figures in (
                ("train", {k: v for k, v in numeric.items() if not k.startswith("eval_")}),
                ("validation", {k.removeprefix("eval_"): v for k, v in numeric.items()
                                if k.startswith("eval_")})):
            context.store.add_metrics(context.cycle_id, split, figures, step=step)
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


def train_as_worker(context: CycleContext, found: Any, prepared: PreparedData, trainer: Any,
                    regularizers: list[Any], timings: dict[str, float]) -> CycleResult:
    """A process other than the main one in a multi-process run: train its share, write nothing.

    Evaluation, outputs, review queue and promotion are the main process's; this one returns
    with status ``worker`` once training ends.
    """
    training_splits = {split: examples for split, examples in prepared.splits.items()
                       if split != "test"}
    started = time.perf_counter()
    with guard(found, "trainers", context.config.trainer_ref.name, "train"):
        result = trainer.train(context, training_splits, regularizers)
    timings["train"] = time.perf_counter() - started
    return CycleResult(context.cycle_id, "worker", result.model_dir, {}, False, [], 0, 0, timings)


def record_training(store: Store, cycle_id: int, result: TrainResult) -> None:
    """Add how training went to the cycle's stats: the regularizers' reports (what each did), the
    share of padding among the tokens processed, the arguments that shaped training."""
    import json

    recorded = ("padding_fraction", "regularizers", "arguments", "resumed_from_step",
                "train_examples", "left_out_undesirable", "recipe", "train_rows", "fsdp")
    training = {name: result.extra[name] for name in recorded if name in result.extra}
    row = store.cycle(cycle_id)
    stats = json.loads(row["stats"]) if row and row.get("stats") else {}
    if training:
        stats["training"] = training
    # what a resume that starts after training needs of the result (tuneloop.resume)
    stats["train_result"] = {"best_metric": result.best_metric, "best_step": result.best_step,
                             "global_step": result.global_step}
    store.update_cycle(cycle_id, stats=stats)


def record_failure(store: Store, cycle_id: int, error: BaseException,
                   timings: dict[str, float]) -> None:
    """Mark the cycle failed, keeping the stage it had reached for a resume; a model it had
    already promoted is withdrawn."""
    store.mark_interrupted(cycle_id, one_line(error), finished_at=_now(), timings=timings)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if not isinstance(error, TuneloopError) else text


def _now() -> str:
    from tuneloop.store import now

    return now()
