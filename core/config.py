"""The cycle config: one YAML file per project, validated with pydantic.

Every problem is reported at once, each with its field path and, where the YAML has it, the file and
line (``tuneloop.yaml:14: data.cleaners[1]: unknown cleaner "dedupe" (did you mean ...)``).
Component references are checked against the registries and their options against each
component's ``Options`` model, so a cycle never starts on a config that would fail half way.

A component reference is a name (``- drop_empty``) or a mapping with ``name`` and its options
(``- {name: char_noise, probability: 0.05}``); data sources use ``type`` for the format.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tuneloop.errors import ConfigError, TuneloopError

DEFAULT_TRAINERS = {"classification": "sequence_classification", "causal-lm": "causal_lm_sft"}
DEFAULT_METRICS = {
    "classification": ["accuracy", "precision", "recall", "f1"],
    "causal-lm": ["exact_match", "perplexity"],
}
DEFAULT_SELECT_METRIC = {"classification": "f1", "causal-lm": "loss"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentRef(Strict):
    """A component by name, with the options the component's ``Options`` model validates."""

    name: str
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value, "options": {}}
        if isinstance(value, dict) and "options" not in value:
            rest = dict(value)
            name = rest.pop("name", None) if "name" in rest else rest.pop("type", None)
            if name is None:
                raise ValueError("needs a name")
            return {"name": name, "options": rest}
        return value


class SourceRef(ComponentRef):
    """A data source: ``type`` names the format, the rest are the source's options."""

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, dict) and "options" not in value:
            rest = dict(value)
            name = rest.pop("type", None)
            if name is None:
                raise ValueError("needs a type (the format, e.g. jsonl or csv)")
            return {"name": name, "options": rest}
        if isinstance(value, str):
            raise ValueError("a data source is a mapping with a type and a path")
        return value


class ModelConfig(Strict):
    name: str = Field(description="hub id, local folder, or package:<module>/<folder>")
    start_from: Literal["promoted", "base"] = "promoted"
    max_length: int = Field(128, ge=8)


class SplitConfig(Strict):
    train: float = Field(0.8, ge=0, le=1)
    validation: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    review: float = Field(0.0, ge=0, le=1)
    seed: int = 42

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.validation + self.test + self.review
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1 (they sum to {total:g})")
        if self.train <= 0 or self.validation <= 0:
            raise ValueError("train and validation fractions must be above 0")
        return self

    def fractions(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test,
                "review": self.review}


class DataConfig(Strict):
    sources: list[SourceRef] = Field(min_length=1)
    cleaners: list[ComponentRef] = [ComponentRef(name="drop_empty"),
                                    ComponentRef(name="drop_duplicates")]
    split: SplitConfig = SplitConfig()
    augmenters: list[ComponentRef] = []
    labels: list[str] | None = Field(
        None, description="the label set (classification); by default the labels seen in data")


class TrainingConfig(Strict):
    trainer: ComponentRef | None = None
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    eval_every: Literal["epoch"] | int = "epoch"
    select_metric: str | None = None
    max_new_tokens: int = Field(32, ge=1)
    seed: int = 42
    regularizers: list[ComponentRef] = []

    @field_validator("eval_every")
    @classmethod
    def _positive_steps(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError("eval_every is 'epoch' or a number of steps (1 or more)")
        return value


class EvaluationConfig(Strict):
    metrics: list[ComponentRef] | None = None


class ReviewConfig(Strict):
    size: int = Field(50, ge=0)
    sampler: ComponentRef = ComponentRef(name="least_confident")
    ratings_per_item: int = Field(1, ge=1)


class FeedbackConfig(Strict):
    policies: list[ComponentRef] = [ComponentRef(name="corrections"),
                                    ComponentRef(name="approvals")]


class PromotionRule(Strict):
    """``metric`` is ``<split>.<name>`` (e.g. ``validation.f1``); the cycle passes the rule when the
    value is at least ``at_least``: a number, ``best`` (the best promoted cycle's value) or
    ``previous`` (the parent cycle's), less ``tolerance``. ``lower_is_better`` flips the test."""

    metric: str
    at_least: float | Literal["best", "previous"] = "best"
    tolerance: float = Field(0.0, ge=0)
    lower_is_better: bool = False

    @field_validator("metric")
    @classmethod
    def _split_dot_name(cls, value: str) -> str:
        split, _, name = value.partition(".")
        if split not in ("validation", "test", "human") or not name:
            raise ValueError("metric must be <split>.<name> with split validation, test or human")
        return value


class PromotionConfig(Strict):
    rules: list[PromotionRule] | None = None


class ProjectConfig(Strict):
    project: str = Field(min_length=1)
    task: Literal["classification", "causal-lm"]
    database: str = "tuneloop.db"
    runs_dir: str = "runs"
    model: ModelConfig
    data: DataConfig
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    review: ReviewConfig = ReviewConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    promotion: PromotionConfig = PromotionConfig()

    # Set by load_config: where the file is, so relative paths resolve against it.
    config_path: Path | None = Field(None, exclude=True)

    # ---- derived settings -------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    @property
    def database_path(self) -> Path:
        return self.resolve(self.database)

    @property
    def runs_path(self) -> Path:
        return self.resolve(self.runs_dir)

    @property
    def trainer_ref(self) -> ComponentRef:
        return self.training.trainer or ComponentRef(name=DEFAULT_TRAINERS[self.task])

    @property
    def metric_refs(self) -> list[ComponentRef]:
        if self.evaluation.metrics is not None:
            return self.evaluation.metrics
        return [ComponentRef(name=name) for name in DEFAULT_METRICS[self.task]]

    @property
    def select_metric(self) -> str:
        return self.training.select_metric or DEFAULT_SELECT_METRIC[self.task]

    @property
    def promotion_rules(self) -> list[PromotionRule]:
        if self.promotion.rules is not None:
            return self.promotion.rules
        lower = self.select_metric == "loss"
        return [PromotionRule(metric=f"validation.{self.select_metric}", at_least="best",
                              lower_is_better=lower)]

    def model_location(self) -> str:
        """The model to load: a local folder if one exists, a package's folder, else a hub id."""
        return resolve_model_name(self.model.name, self.base_dir)

    def snapshot(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"config_path"})


def resolve_model_name(name: str, base_dir: Path) -> str:
    if name.startswith("package:"):
        module, _, folder = name[len("package:"):].partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise TuneloopError(f'model.name: package "{module}" is not installed')
        return str(Path(list(spec.submodule_search_locations)[0]) / folder)
    local = Path(name).expanduser()
    if not local.is_absolute():
        local = base_dir / local
    if local.exists() or name.startswith((".", "/", "~")):
        return str(local)
    return name  # a hub id; transformers fetches it (online) or finds it in the cache


# ------------------------------------------------------------------------------------------------
# Loading and checking
# ------------------------------------------------------------------------------------------------


def load_config(path: str | Path, check_components: bool = True) -> ProjectConfig:
    """Read, validate and (by default) check component names and options against the registries."""
    path = Path(path)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(label, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(label, [f"cannot read: {error}"]) from None
    try:
        raw = yaml.safe_load(text)
        lines = _line_index(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark else label
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(where, [f"invalid YAML: {problem}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(label, ["the config must be a YAML mapping"])
    try:
        config = ProjectConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(label, [_describe(e, lines) for e in error.errors()]) from None
    config.config_path = path.resolve()
    if check_components:
        check_config_components(config, lines, label)
    return config


def _describe(error: dict[str, Any], lines: dict[tuple, int]) -> str:
    location = tuple(error["loc"])
    # pydantic puts validator names such as 'function-before[...]' in the location; drop them
    location = tuple(part for part in location if not (isinstance(part, str) and "[" in part))
    field = _dotted(location)
    line = _nearest_line(location, lines)
    message = error["msg"].removeprefix("Value error, ")
    prefix = f"line {line}: " if line else ""
    return f"{prefix}{field or 'config'}: {message}"


def _dotted(location: tuple) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _nearest_line(location: tuple, lines: dict[tuple, int]) -> int | None:
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return None


def _line_index(text: str) -> dict[tuple, int]:
    """Map each YAML path (('data', 'sources', 0, 'path')) to its 1-based line."""
    index: dict[tuple, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, path + (key.value,))
                index[path + (key.value,)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for number, item in enumerate(node.value):
                walk(item, path + (number,))

    if root is not None:
        walk(root, ())
    return index


COMPONENT_FIELDS: list[tuple[str, tuple, str]] = [
    # (registry kind, YAML path of the list or single ref, attribute path on the config)
    ("data_sources", ("data", "sources"), "data.sources"),
    ("cleaners", ("data", "cleaners"), "data.cleaners"),
    ("augmenters", ("data", "augmenters"), "data.augmenters"),
    ("regularizers", ("training", "regularizers"), "training.regularizers"),
    ("metrics", ("evaluation", "metrics"), "evaluation.metrics"),
    ("feedback_policies", ("feedback", "policies"), "feedback.policies"),
]


def check_config_components(config: ProjectConfig, lines: dict[tuple, int] | None = None,
                            label: str = "config") -> None:
    """Check every component name and its options; collect all problems into one ConfigError."""
    from tuneloop import registries

    lines = lines or {}
    found = registries.build()
    problems: list[str] = []

    def check(kind: str, ref: ComponentRef, path: tuple) -> None:
        where = _dotted(path)
        line = _nearest_line(path, lines)
        prefix = f"line {line}: " if line else ""
        try:
            component = found[kind].get(ref.name)
        except TuneloopError as error:
            problems.append(f"{prefix}{where}: {error}")
            return
        if config.task not in component.tasks:
            problems.append(f'{prefix}{where}: {found[kind].label} "{ref.name}" does not support '
                            f"task {config.task} (it supports {', '.join(component.tasks)})")
        try:
            component.Options.model_validate(ref.options)
        except ValidationError as error:
            for item in error.errors():
                option_path = path + tuple(item["loc"])
                option_line = _nearest_line(option_path, lines)
                option_prefix = f"line {option_line}: " if option_line else ""
                problems.append(f"{option_prefix}{_dotted(option_path)}: {item['msg']}")

    for kind, yaml_path, attribute in COMPONENT_FIELDS:
        value: Any = config
        for part in attribute.split("."):
            value = getattr(value, part)
        refs = value if value is not None else (
            config.metric_refs if kind == "metrics" else [])
        for number, ref in enumerate(refs):
            check(kind, ref, yaml_path + (number,))
    check("trainers", config.trainer_ref, ("training", "trainer"))
    check("review_samplers", config.review.sampler, ("review", "sampler"))
    if problems:
        raise ConfigError(label, problems)


def instantiate(found: Any, registry_kind: str, ref: ComponentRef, config: ProjectConfig) -> Any:
    """Build a component from its reference (options validated; a source's path resolved)."""
    component = found[registry_kind].get(ref.name)
    options = dict(ref.options)
    if registry_kind == "data_sources" and "path" in options:
        options["path"] = str(config.resolve(str(options["path"])))
    return component(component.Options.model_validate(options))
