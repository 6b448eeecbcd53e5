"""Hyperparameter search: ``tuneloop tune CONFIG --trials N --strategy grid|random|bayes``.

The search space is ``training.search_space`` in the config: each key is a path into the training
section (``learning_rate``, ``lora.r``), a regularizer's option (``regularizers.dropout.p``; the
regularizer is added when the config lacks it) or a trainer option (``trainer.beta``); each value
is a list of choices or a range::

    training:
      search_space:
        learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}
        batch_size: [16, 32]
        epochs: {low: 2, high: 6, integer: true}
        regularizers.weight_decay.value: {low: 0.0, high: 0.1}

A trial trains with the config's trainer on the training split and scores the validation split
with the selection metric (``training.select_metric``): the test split is never handed to the
search, so it stays an honest estimate of the chosen setting. Strategies are optuna samplers:
``grid`` (every combination; a range contributes ``grid_points`` values), ``random``, and ``bayes``
(TPE). Poor trials are pruned on their intermediate validation figures (optuna's median rule,
compared evaluation by evaluation). Every trial is stored in the ``trials`` table, whatever its
end; ``apply_best`` writes the best trial's values into the config file for the next cycle.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tuneloop.components import Regularizer
from tuneloop.config import (DEFAULT_TRAINERS, ProjectConfig, SearchParameter,
                             check_config_components, instantiate)
from tuneloop.context import CycleContext, Progress
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.store import Store, now

STRATEGIES = ("grid", "random", "bayes")


@dataclass
class TrialRecord:
    number: int
    state: str
    params: dict[str, Any]
    value: float | None = None
    seconds: float = 0.0
    intermediate: list[list[float]] = field(default_factory=list)
    error: str | None = None


@dataclass
class StudyResult:
    study: str
    metric: str
    direction: str
    strategy: str
    trials: list[TrialRecord]

    @property
    def best(self) -> TrialRecord | None:
        complete = [trial for trial in self.trials if trial.state == "complete"]
        if not complete:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(complete, key=lambda trial: trial.value)


# --------------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------------


def tune(config: ProjectConfig, *, trials: int, strategy: str, seed: int = 0,
         pruning: bool = True, quiet: bool = True,
         echo: Callable[[str], None] = lambda message: None) -> StudyResult:
    """Run a search of ``trials`` trials over ``config.training.search_space``; store each trial."""
    import optuna

    from tuneloop import data_problems, registries
    from tuneloop.cycle import choose_start_model, guard, prepare_data

    space = config.training.search_space
    where = str(config.config_path or "config")
    if not space:
        raise ConfigError(where, ["training.search_space: empty; name the training settings to "
                                  "search (see tuneloop tune --help)"])
    if strategy not in STRATEGIES:
        raise TuneloopError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy}")
    for path in space:  # every setting the search will try must make a valid config
        with_values(config, {path: first_value(space[path])})

    found = registries.build()
    store = Store(config.database_path)
    try:
        echo("Preparing data")
        prepared = prepare_data(config, found, store)
        data_problems.stop_on_errors(prepared.report)  # as a cycle would stop
        # the search sees training and validation only: the test split stays unseen
        splits = {name: prepared.splits.get(name) or [] for name in ("train", "validation")}
        if not splits["validation"]:
            raise TuneloopError("the validation split is empty: a search needs validation figures "
                                "(check data.split)")
        metric = config.select_metric
        metrics = [instantiate(found, "metrics", ref, config) for ref in config.metric_refs]
        direction = "minimize" if metric == "loss" or not next(
            (component.higher_is_better for component in metrics if component.name == metric),
            True) else "maximize"
        start_model = choose_start_model(config, store)
        study_name = f"{config.project}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
        study_dir = config.runs_path / f"tune-{study_name}"

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = make_sampler(strategy, space, seed)
        if strategy == "grid":
            trials = min(trials, grid_size(space))
        study = optuna.create_study(
            study_name=study_name, direction=direction, sampler=sampler,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2) if pruning
            else optuna.pruners.NopPruner())
        records: list[TrialRecord] = []

        def objective(trial: Any) -> float:
            params = {path: suggest(trial, path, parameter) for path, parameter in space.items()}
            trial_config = with_values(config, params)
            record = TrialRecord(number=trial.number, state="running", params=params)
            records.append(record)
            row_id = insert_trial(store, config.project, study_name, strategy, metric, direction,
                                  record)
            echo(f"Trial {trial.number}: " + ", ".join(f"{path}={value}"
                                                      for path, value in params.items()))
            context = CycleContext(
                cycle_id=0, config=trial_config, store=store,
                run_dir=study_dir / f"trial-{trial.number}", start_model=start_model,
                seed=trial_config.training.seed, labels=prepared.report.get("labels"),
                metrics=[component for component in metrics
                         if not getattr(component, "measures_model", False)],
                progress=Progress(quiet))
            trainer = instantiate(found, "trainers", trial_config.trainer_ref, trial_config)
            regularizers = [instantiate(found, "regularizers", ref, trial_config)
                            for ref in trial_config.training.regularizers]
            reporter = TrialReporter(trial, metric, record)
            started = time.perf_counter()
            try:
                with guard(found, "trainers", trial_config.trainer_ref.name, "train"):
                    result = trainer.train(context, splits, regularizers + [reporter])
            except TuneloopError:
                finish_trial(store, row_id, record, "failed", time.perf_counter() - started,
                             error="stopped: a configuration or data error")
                raise
            except Exception as error:  # a trial that breaks (diverges, runs out of memory)
                finish_trial(store, row_id, record, "failed", time.perf_counter() - started,
                             error=f"{type(error).__name__}: {error}"[:500])
                echo(f"Trial {trial.number} failed: {type(error).__name__}: {error}")
                return math.nan  # optuna records the trial as failed and goes on
            finally:
                shutil.rmtree(context.run_dir, ignore_errors=True)  # trials keep no models
            seconds = time.perf_counter() - started
            if reporter.pruned:
                finish_trial(store, row_id, record, "pruned", seconds)
                raise optuna.TrialPruned()
            if result.best_metric is None or not math.isfinite(result.best_metric):
                finish_trial(store, row_id, record, "failed", seconds,
                             error=f"no finite validation {metric}")
                return math.nan
            record.value = float(result.best_metric)
            finish_trial(store, row_id, record, "complete", seconds)
            return record.value

        study.optimize(objective, n_trials=trials)
        shutil.rmtree(study_dir, ignore_errors=True)
        return StudyResult(study_name, metric, direction, strategy, records)
    finally:
        store.close()


class TrialReporter(Regularizer):
    """A regularizer in name only: its callback hands each validation figure to optuna and stops
    training when the pruner says the trial is behind the others at the same evaluation. It
    changes nothing else, so it keeps the base class's do-nothing configure/prepare/penalty."""

    name = "tuneloop_trial"

    def __init__(self, trial: Any, metric: str, record: TrialRecord):
        super().__init__()
        self.trial = trial
        self.metric = metric
        self.record = record
        self.pruned = False

    def callbacks(self) -> list[Any]:
        from transformers import TrainerCallback

        reporter = self

        class Report(TrainerCallback):
            def on_evaluate(self, args: Any, state: Any, control: Any,
                            metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
                value = (metrics or {}).get(f"eval_{reporter.metric}")
                if value is None:
                    return
                evaluation = len(reporter.record.intermediate)
                reporter.record.intermediate.append([evaluation, state.global_step, float(value)])
                reporter.trial.report(float(value), evaluation)
                if reporter.trial.should_prune():
                    reporter.pruned = True
                    control.should_training_stop = True

        return [Report()]


# --------------------------------------------------------------------------------------------------
# The search space
# --------------------------------------------------------------------------------------------------


def suggest(trial: Any, path: str, parameter: SearchParameter) -> Any:
    if parameter.choices is not None:
        return trial.suggest_categorical(path, parameter.choices)
    assert parameter.low is not None and parameter.high is not None
    if parameter.integer:
        return trial.suggest_int(path, int(parameter.low), int(parameter.high), log=parameter.log)
    return trial.suggest_float(path, parameter.low, parameter.high, log=parameter.log)


def grid_values(parameter: SearchParameter) -> list[Any]:
    """The values a grid tries: the choices, or ``grid_points`` values spread over the range
    (evenly, or evenly in the logarithm for ``log``)."""
    if parameter.choices is not None:
        return list(parameter.choices)
    low, high, points = float(parameter.low), float(parameter.high), parameter.grid_points
    if parameter.log:
        values = [math.exp(math.log(low) + (math.log(high) - math.log(low)) * step / (points - 1))
                  for step in range(points)]
    else:
        values = [low + (high - low) * step / (points - 1) for step in range(points)]
    values[0], values[-1] = low, high  # exactly: optuna warns about a value out of its range
    values = [min(max(value, low), high) for value in values]
    if parameter.integer:
        return sorted({int(round(value)) for value in values})
    return values


def grid_size(space: dict[str, SearchParameter]) -> int:
    return math.prod(len(grid_values(parameter)) for parameter in space.values())


def make_sampler(strategy: str, space: dict[str, SearchParameter], seed: int) -> Any:
    import optuna

    if strategy == "grid":
        return optuna.samplers.GridSampler({path: grid_values(parameter)
                                            for path, parameter in space.items()}, seed=seed)
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def first_value(parameter: SearchParameter) -> Any:
    return grid_values(parameter)[0]


def with_values(config: ProjectConfig, params: dict[str, Any]) -> ProjectConfig:
    """A copy of ``config`` with each search path set to its value, checked like a loaded config."""
    data = config.snapshot()
    training = data["training"]
    for path, value in params.items():
        set_training_value(training, path, value, config)
    try:
        updated = ProjectConfig.model_validate(data)
    except Exception as error:  # pydantic's ValidationError: name the search path
        raise ConfigError(str(config.config_path or "config"),
                          [f"training.search_space: {', '.join(params)}: {error}"]) from None
    updated.config_path = config.config_path
    check_config_components(updated, label=str(config.config_path or "config"))
    return updated


def set_training_value(training: dict[str, Any], path: str, value: Any,
                       config: ProjectConfig) -> None:
    """Set ``path`` (``lora.r``, ``regularizers.dropout.p``, ``trainer.beta``) in the training
    section's data; a regularizer, trainer reference or section the config lacks is added."""
    head, *rest = path.split(".")
    if head == "regularizers":
        name, *option = rest
        refs = training.setdefault("regularizers", [])
        ref = next((ref for ref in refs if ref["name"] == name), None)
        if ref is None:
            ref = {"name": name, "options": {}}
            refs.append(ref)
        nested_set(ref["options"], option, value)
    elif head == "trainer":
        if training.get("trainer") is None:
            training["trainer"] = {"name": DEFAULT_TRAINERS[config.task], "options": {}}
        nested_set(training["trainer"]["options"], rest, value)
    else:
        nested_set(training, [head, *rest], value)


def nested_set(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        if not isinstance(data.get(key), dict):
            data[key] = {}
        data = data[key]
    data[keys[-1]] = value


# --------------------------------------------------------------------------------------------------
# Records and applying the best trial
# --------------------------------------------------------------------------------------------------


def insert_trial(store: Store, project: str, study: str, strategy: str, metric: str,
                 direction: str, record: TrialRecord) -> int:
    with store.write() as db:
        table = db["trials"]
        table.insert({"project": project, "study": study, "number": record.number,
                      "strategy": strategy, "params": json.dumps(record.params), "metric": metric,
                      "direction": direction, "state": "running", "started_at": now()})
        return int(table.last_pk)


def finish_trial(store: Store, row_id: int, record: TrialRecord, state: str, seconds: float,
                 error: str | None = None) -> None:
    record.state, record.seconds, record.error = state, seconds, error
    with store.write() as db:
        db["trials"].update(row_id, {
            "state": state, "value": record.value, "seconds": seconds, "error": error,
            "intermediate": json.dumps(record.intermediate), "finished_at": now()})


def apply_best(config: ProjectConfig, result: StudyResult) -> tuple[dict[str, Any], bool]:
    """Write the best trial's values into the config file; returns them and whether the file's
    comments were kept (else the file was rewritten and a ``.bak`` copy of the original kept)."""
    import yaml

    from tuneloop.config import load_config
    from tuneloop.config_writer import edit_text

    best = result.best
    if best is None:
        raise TuneloopError("no trial completed: nothing to apply")
    if config.config_path is None:
        raise TuneloopError("the config has no file to write to")
    path = Path(config.config_path)
    original = path.read_text(encoding="utf-8")
    raw = yaml.safe_load(original) or {}
    locations = {search_path: yaml_location(raw, search_path) for search_path in best.params}
    edited = None
    if all(location is not None for location in locations.values()):
        edited = edit_text(original, {locations[search_path]: value
                                      for search_path, value in best.params.items()})
    in_place = edited is not None
    if edited is None:  # a structural change: rewrite from the data, keeping the original aside
        path.with_name(path.name + ".bak").write_text(original, encoding="utf-8")
        for search_path, value in best.params.items():
            set_search_value(raw, search_path, value, config)
        edited = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    path.write_text(edited, encoding="utf-8")
    try:
        load_config(path)
    except TuneloopError:
        path.write_text(original, encoding="utf-8")
        raise
    with Store(config.database_path) as store, store.write() as db:
        db.execute("UPDATE trials SET applied = 1 WHERE study = ? AND number = ?",
                   [result.study, best.number])
    return best.params, in_place


def yaml_location(raw: dict[str, Any], search_path: str) -> tuple | None:
    """Where a search path's value goes in the YAML file's own structure, when it can be written
    there in place: the component it belongs to is written as a mapping. ``None`` otherwise
    (a regularizer named by a bare string or missing, a trainer named by a bare string)."""
    head, *rest = search_path.split(".")
    training = raw.get("training")
    if training is not None and not isinstance(training, dict):
        return None
    training = training or {}
    if head == "regularizers":
        name, *option = rest
        for number, item in enumerate(training.get("regularizers") or []):
            if isinstance(item, dict) and item.get("name", item.get("type")) == name:
                inner = ("options",) if "options" in item else ()
                return ("training", "regularizers", number, *inner, *option)
        return None
    if head == "trainer":
        trainer = training.get("trainer")
        if not isinstance(trainer, dict):
            return None
        inner = ("options",) if "options" in trainer else ()
        return ("training", "trainer", *inner, *rest)
    return ("training", head, *rest)


def set_search_value(raw: dict[str, Any], search_path: str, value: Any,
                     config: ProjectConfig) -> None:
    """Set a search path's value in loaded YAML data, turning a component named by a bare string
    into a mapping and adding a missing one."""
    head, *rest = search_path.split(".")
    if not isinstance(raw.get("training"), dict):
        raw["training"] = {}
    training = raw["training"]
    if head == "regularizers":
        name, *option = rest
        items = training.setdefault("regularizers", [])
        for number, item in enumerate(items):
            if item == name:
                items[number] = item = {"name": name}
            if isinstance(item, dict) and item.get("name") == name:
                nested_set(item.setdefault("options", {}) if "options" in item else item,
                           option, value)
                return
        items.append({"name": name})
        nested_set(items[-1], option, value)
    elif head == "trainer":
        trainer = training.get("trainer")
        if not isinstance(trainer, dict):
            trainer = training["trainer"] = {"name": trainer or DEFAULT_TRAINERS[config.task]}
        nested_set(trainer["options"] if "options" in trainer else trainer, rest, value)
    else:
        nested_set(training, [head, *rest], value)
