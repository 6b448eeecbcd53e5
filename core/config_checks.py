"""Checks of a config that field types cannot make: settings that are each valid alone but can
never work together, found by ``tuneloop validate`` (and at the start of ``run``) instead of
minutes into training, or never.

- ``model.name``: a local folder must be a model folder (its ``config.json``); a hub id must be in
  the local cache when the hub is offline (``HF_HUB_OFFLINE``). ``check_model``: by ``validate``
  and at the start of ``run`` and ``tune``, before any cycle row is written, so a typo is blamed
  on ``model.name`` and its line, not on the trainer plugin (``data inspect`` needs no model).
- ``training.freeze_layers``: at most the model's layer count, read from its ``config.json``
  (as JSON, else ``transformers.AutoConfig``; the weights are not loaded).
- ``training.select_metric``: a figure that a validation metric gives (or ``loss``).
- ``training.search_space``: every key names an option that exists, of a component or section
  that is configured (``lora.r`` without ``training.lora`` would switch LoRA on by surprise).
- ``promotion.rules``: a ``validation.*`` or ``human.*`` figure that something measures.

Metric figure names come from ``Metric.figure_names()``; a metric that cannot say (``None``,
the default for third-party metrics) turns the figure checks off rather than guess.
Each function returns problems as ``"line N: field.path: message"`` strings for ``ConfigError``.
"""

from __future__ import annotations

import json
import os
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tuneloop.errors import TuneloopError

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.config import ProjectConfig

Where = Callable[[tuple], str]  # a YAML path -> "line N: dotted.path"

MODEL_FILES = ("config.json", "adapter_config.json")


def all_problems(config: "ProjectConfig", found: Any, where: Where) -> list[str]:
    """The problems of figures and the search space (checked by every ``load_config``)."""
    figures = validation_figures(config, found)
    problems = select_metric_problems(config, found, figures, where)
    problems += search_space_problems(config, found, where)
    problems += promotion_problems(config, figures, where)
    return problems


# ---- the model -------------------------------------------------------------------------------


def check_model(config: "ProjectConfig", label: str | None = None) -> None:
    """Raise a ``ConfigError`` naming ``model.name`` (or ``training.freeze_layers``) and its line
    when the model cannot be loaded as configured. ``validate`` and ``run`` call it (``run``
    before any cycle row is written); ``data inspect`` does not, as it never loads the model."""
    from tuneloop.config import _dotted, _line_index, _nearest_line
    from tuneloop.errors import ConfigError

    lines: dict[tuple, int] = {}
    if config.config_path is not None:
        try:
            lines = _line_index(config.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            pass

    def where(path: tuple) -> str:
        line = _nearest_line(path, lines)
        return f"{f'line {line}: ' if line else ''}{_dotted(path)}"

    problems = model_problems(config, where)
    if not problems:  # the layer count needs a readable model config
        problems = freeze_layers_problems(config, where)
    if problems:
        raise ConfigError(label or str(config.config_path or "config"), problems)


def hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def model_problems(config: "ProjectConfig", where: Where) -> list[str]:
    """``model.name`` must name a model folder, or a hub id this machine can load."""
    name = config.model.name
    try:
        location = config.model_location()
    except TuneloopError as error:  # package:<module>/... whose package is missing
        return [f"{where(('model', 'name'))}: {str(error).removeprefix('model.name: ')}"]
    path = Path(location)
    local = path.is_absolute() or name.startswith(("package:", ".", "/", "~")) or path.exists()
    if local:
        if not path.exists():
            return [f'{where(("model", "name"))}: "{name}": no such folder ({path})']
        if not path.is_dir() or not any((path / file).is_file() for file in MODEL_FILES):
            return [f'{where(("model", "name"))}: "{name}" is not a model folder (no '
                    f"config.json in {path}): give a folder saved by save_pretrained, or a hub "
                    f"id"]
        return []
    if hub_offline() and not hub_cached(name):
        return [f'{where(("model", "name"))}: "{name}" is neither a local folder nor in the '
                f"Hugging Face cache, and the hub is offline (HF_HUB_OFFLINE): download it "
                f"first, or give a local model folder"]
    return []


def hub_cached(repo_id: str) -> bool:
    """Whether the hub model's ``config.json`` is in the local cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub would refuse (spaces, several slashes)
        return False
    return isinstance(found, str)


LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")  # transformers' names for it


def layer_count(location: str) -> int | None:
    """The model's number of transformer layers from its ``config.json``; no weights are read and
    nothing is downloaded. ``None`` when the config does not say.

    The file is read as JSON first, because importing transformers costs seconds at every
    ``validate`` (3-30 s measured on a loaded 2-core machine) and the count is a top-level key in
    the configs of the models tuneloop trains (``num_hidden_layers``, or GPT-2's ``n_layer``,
    which ``AutoConfig`` maps to it). A config that keeps it elsewhere (a nested ``text_config``)
    goes through ``transformers.AutoConfig``.
    """
    path = Path(location) / "config.json"
    if not path.is_file():
        path = _cached_config(location)
    if path is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            for key in LAYER_KEYS:
                if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
                    return int(data[key])
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(location, local_files_only=True)
    except Exception:  # an adapter folder, or a config transformers cannot read: not checked
        return None
    count = getattr(model_config, "num_hidden_layers", None)
    if count is None and hasattr(model_config, "get_text_config"):
        count = getattr(model_config.get_text_config(), "num_hidden_layers", None)
    return count if isinstance(count, int) else None


def _cached_config(repo_id: str) -> Path | None:
    if Path(repo_id).exists():
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return None
    return Path(found) if isinstance(found, str) else None


def freeze_layers_problems(config: "ProjectConfig", where: Where) -> list[str]:
    wanted = config.training.freeze_layers
    if not wanted:
        return []
    count = layer_count(config.model_location())
    if count is None or wanted <= count:
        return []
    return [f"{where(('training', 'freeze_layers'))}: {wanted} layers, but model "
            f'"{config.model.name}" has {count}: freeze at most {count}']


# ---- figures -----------------------------------------------------------------------------------


def validation_figures(config: "ProjectConfig", found: Any) -> set[str] | None:
    """The figures a cycle records for the validation split: each metric's ``figure_names()``
    and the selection figure. ``None`` when a metric cannot say (then nothing is checked)."""
    names: set[str] = set()
    for ref in config.metric_refs:
        if ref.name not in found["metrics"]:
            return None  # reported as an unknown metric already
        component = found["metrics"].get(ref.name)
        if config.task not in component.tasks:
            continue  # reported as a task mismatch already; it gives nothing
        if component.measures_model:
            continue  # benchmark figures, not validation ones
        try:
            metric = component(component.Options.model_validate(ref.options))
            given = metric.figure_names()
        except Exception:  # bad options are reported already; a metric that fails here: unknown
            return None
        if given is None:
            return None
        names.update(given)
    return names


def select_metric_problems(config: "ProjectConfig", found: Any, figures: set[str] | None,
                           where: Where) -> list[str]:
    wanted = config.select_metric
    if wanted == "loss" or figures is None or wanted in figures:
        return []
    path = ("training", "select_metric")
    if wanted in found["metrics"]:
        component = found["metrics"].get(wanted)
        if config.task not in component.tasks:
            return [f'{where(path)}: metric "{wanted}" does not measure {config.task} (it '
                    f"measures {', '.join(component.tasks)}); the validation figures are "
                    f"{_listing(figures)}"]
    return [f'{where(path)}: "{wanted}" is not a validation figure: evaluation.metrics give '
            f"{_listing(figures)}"]


def _listing(figures: set[str]) -> str:
    return ", ".join(sorted(figures | {"loss"}))


HUMAN_PREFIX = "human."


def promotion_problems(config: "ProjectConfig", figures: set[str] | None,
                       where: Where) -> list[str]:
    """A rule on a figure nothing measures can never pass (``was not measured``, every cycle)."""
    from tuneloop.human_metrics import FIGURES as HUMAN_FIGURES

    if config.promotion.rules is None:
        return []  # the default rule is on the selection figure
    validation = None if figures is None else figures | {config.select_metric}
    problems = []
    for number, rule in enumerate(config.promotion.rules):
        split, _, name = rule.metric.partition(".")
        known = {"validation": validation, "human": set(HUMAN_FIGURES)}.get(split)
        if known is None or any(fnmatchcase(figure, name) for figure in known):
            continue
        path = ("promotion", "rules", number, "metric")
        measured = ", ".join(sorted(known)) or "none"
        problems.append(f'{where(path)}: nothing measures "{rule.metric}", so the rule can never '
                        f"pass; {split} figures are {measured}")
    return problems


# ---- the search space ----------------------------------------------------------------------------


def search_space_problems(config: "ProjectConfig", found: Any, where: Where) -> list[str]:
    """Each key of ``training.search_space`` must reach an option that exists; a section key
    (``lora.r``) needs that section configured."""
    from tuneloop.config import TrainingConfig

    problems = []
    training = config.training
    for key in training.search_space:
        head, *rest = key.split(".")
        at = where(("training", "search_space", key))
        if head == "regularizers":
            name, option = rest[0], rest[1]
            if name not in found["regularizers"]:
                problems.append(f'{at}: no regularizer "{name}" (available: '
                                f"{', '.join(sorted(found['regularizers'].names()))})")
                continue
            options = found["regularizers"].get(name).Options
            if option not in options.model_fields:
                problems.append(f'{at}: regularizer "{name}" has no option "{option}" '
                                f"({_fields(options)})")
            continue
        if head == "trainer":
            ref = config.trainer_ref
            if ref.name not in found["trainers"]:
                continue  # reported as an unknown trainer already
            options = found["trainers"].get(ref.name).Options
            if rest[0] not in options.model_fields:
                problems.append(f'{at}: trainer "{ref.name}" has no option "{rest[0]}" '
                                f"({_fields(options)})")
            continue
        field = TrainingConfig.model_fields.get(head)
        if field is None:
            continue  # refused by the field validator already
        section = _model_class(field.annotation)
        if not rest:
            if section is not None:
                problems.append(f"{at}: training.{head} is a section; name one of its options "
                                f"({', '.join(f'{head}.{o}' for o in section.model_fields)})")
            continue
        if section is None:
            problems.append(f"{at}: training.{head} is a single value; it has no option "
                            f'"{".".join(rest)}"')
            continue
        if rest[0] not in section.model_fields:
            problems.append(f'{at}: training.{head} has no option "{rest[0]}" '
                            f"({_fields(section)})")
            continue
        if getattr(training, head) is None:
            problems.append(f"{at}: training.{head} is not configured, so there is no "
                            f"{head}.{rest[0]} to tune: add `{head}: {{}}` under training "
                            f"(with its other options), or drop the key")
    return problems


def _model_class(annotation: Any) -> Any:
    """The pydantic model a field holds (``LoraConfig`` for ``LoraConfig | None``), else None."""
    import typing

    from pydantic import BaseModel

    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _fields(model: Any) -> str:
    names = list(model.model_fields)
    return "options: " + ", ".join(names) if names else "it takes no options"
