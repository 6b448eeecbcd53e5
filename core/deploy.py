"""``tuneloop predict``: run an exported or registered model on new inputs, JSONL in, JSONL out.

The model is a folder written by ``tuneloop models export`` (its ``tuneloop.json`` says the task,
the trainer and the lengths), a project's registered model (``current`` or a cycle number, with
the project config), or any transformers folder (the task is read from its architecture).
Prediction goes through the trainer that made the model, so a plugin trainer's models predict the
way they were evaluated; batches are grouped by length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from tuneloop.errors import DataError, TuneloopError

DEFAULT_TRAINERS = {"classification": "sequence_classification", "causal-lm": "causal_lm_sft"}


@dataclass
class DeployedModel:
    """A model folder and what running it needs."""

    path: Path
    task: str
    trainer: str
    max_length: int = 128
    max_new_tokens: int = 32
    labels: list[str] | None = None
    trainer_options: dict[str, Any] | None = None


def from_folder(path: Path) -> DeployedModel:
    """A model folder: an export (``tuneloop.json``) or a plain transformers folder."""
    from tuneloop.model_card import MANIFEST

    if not (path / "config.json").is_file():
        raise TuneloopError(f"{path}: not a model folder (no config.json)")
    manifest = path / MANIFEST
    if manifest.is_file():
        info = json.loads(manifest.read_text(encoding="utf-8"))
        task = info["task"]
        return DeployedModel(path, task, info.get("trainer") or DEFAULT_TRAINERS[task],
                             info.get("max_length") or 128, info.get("max_new_tokens") or 32,
                             info.get("labels"), info.get("trainer_options"))
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        task = "classification"
    elif any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures):
        task = "causal-lm"
    else:
        raise TuneloopError(f"{path}: cannot tell the task from architectures "
                            f"{architectures or 'none'}; export it with tuneloop models export")
    return DeployedModel(path, task, DEFAULT_TRAINERS[task])


def from_registry(config_path: str, reference: str) -> DeployedModel:
    """A project's model: ``current`` (the latest promoted) or a cycle number."""
    from tuneloop.config import load_config
    from tuneloop.promotion import current_model
    from tuneloop.store import Store

    config = load_config(config_path, check_components=False)
    if not config.database_path.exists():
        raise TuneloopError(f"{config.database_path}: no cycles yet; run tuneloop run first")
    with Store(config.database_path) as store:
        if reference in ("current", "promoted"):
            model = current_model(store, config.project)
            if model is None:
                raise TuneloopError(f"project {config.project} has no promoted model yet")
        else:
            model = store.one("SELECT m.* FROM models m JOIN cycles c ON c.id = m.cycle_id "
                              "WHERE m.cycle_id = ? AND c.project = ?",
                              [int(reference), config.project])
            if model is None:
                raise TuneloopError(f"project {config.project} has no model for cycle "
                                    f"{reference} (see tuneloop models list)")
        cycle = store.cycle(model["cycle_id"])
        labels = json.loads(cycle["stats"] or "{}").get("labels")
    snapshot = json.loads(cycle["config"])
    training = snapshot.get("training") or {}
    path = Path(model["path"])
    if not (path / "config.json").is_file():
        raise TuneloopError(f"cycle {model['cycle_id']}'s model folder {path} is gone")
    trainer = training.get("trainer") or {}
    return DeployedModel(path, cycle["task"],
                         trainer.get("name") or DEFAULT_TRAINERS[cycle["task"]],
                         (snapshot.get("model") or {}).get("max_length") or 128,
                         training.get("max_new_tokens") or 32, labels, trainer.get("options"))


def resolve(reference: str, config_path: str | None) -> DeployedModel:
    """``reference`` as a folder if there is one, else as a registered model of the project."""
    path = Path(reference)
    if path.is_dir():
        return from_folder(path)
    if reference in ("current", "promoted") or reference.isdigit():
        if config_path is None or not Path(config_path).is_file():
            raise TuneloopError(f'model "{reference}" is a registered model: pass --config '
                                f"with the project's config")
        return from_registry(config_path, reference)
    raise TuneloopError(f"{reference}: no such model folder (or give current, or a cycle "
                        f"number, with --config)")


def read_inputs(path: Path, field: str) -> list[tuple[dict[str, Any], str]]:
    """Each JSONL line as ``(record, text)``: an object with ``field``, or a JSON string."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(str(path), f"cannot read: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(str(path), f"not JSON ({error.msg})", number) from None
        if isinstance(value, str):
            rows.append(({field: value}, value))
        elif isinstance(value, dict) and isinstance(value.get(field), str):
            rows.append((value, value[field]))
        else:
            raise DataError(str(path), f'expected an object with a text field "{field}" '
                                       f"(or a JSON string)", number)
    return rows


def predict(model: DeployedModel, texts: list[str], batch_size: int,
            quiet: bool = True) -> list[Any]:
    """The trainer's predictions for ``texts``, in order, batched by length."""
    import tempfile

    from tuneloop import registries
    from tuneloop.components import Example
    from tuneloop.config import ProjectConfig
    from tuneloop.context import CycleContext, Progress

    found = registries.build()
    trainer_class = found["trainers"].get(model.trainer)
    config = ProjectConfig.model_validate({
        "project": "predict", "task": model.task,
        "model": {"name": str(model.path), "max_length": model.max_length},
        "data": {"sources": [{"type": "jsonl", "path": "unused.jsonl"}]},
        "training": {"trainer": model.trainer, "eval_batch_size": batch_size,
                     "max_new_tokens": model.max_new_tokens},
    })
    examples = [Example(input=text) for text in texts]
    with tempfile.TemporaryDirectory(prefix="tuneloop-predict-") as run_dir:
        context = CycleContext(cycle_id=0, config=config, store=None, run_dir=Path(run_dir),
                               start_model=str(model.path), seed=config.training.seed,
                               labels=model.labels, progress=Progress(quiet))
        from tuneloop.plugin_manager import blame

        plugin = found["trainers"].entry(model.trainer).plugin
        with blame(plugin, f'trainer "{model.trainer}" predict'):
            trainer = trainer_class(trainer_class.Options.model_validate(
                model.trainer_options or {}))
            return trainer.predict(str(model.path), examples, context)


def write_outputs(rows: Iterable[tuple[dict[str, Any], Any]], out: IO[str],
                  scores: bool = False) -> int:
    count = 0
    for record, prediction in rows:
        answer = dict(record, output=prediction.output, confidence=prediction.confidence)
        if scores and prediction.scores is not None:
            answer["scores"] = prediction.scores
        out.write(json.dumps(answer, ensure_ascii=False) + "\n")
        count += 1
    return count


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
