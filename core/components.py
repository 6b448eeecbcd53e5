"""The records that flow through a cycle and the interfaces plugins implement.

A plugin registers component *classes*. The cycle instantiates each one with its validated options
(``Component.Options``, a pydantic model that forbids unknown fields, so a typo in the config is an
error naming the field) and calls the one method its kind defines. The methods are small on purpose:
a plugin author should be able to read this file and write a component.

Nothing here imports torch, transformers or evaluate: this module is on the CLI's start-up path.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.context import CycleContext

Task = Literal["classification", "causal-lm"]
TASKS: tuple[str, ...] = ("classification", "causal-lm")
SPLITS: tuple[str, ...] = ("train", "validation", "test", "review")


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


def content_id(input: str, target: str | None, *extra: object) -> str:
    """A stable id for an example: the same input and target give the same id in every cycle."""
    payload = json.dumps([input, target, *extra] if extra else [input, target], ensure_ascii=False)
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


_INTERNED = 64  # targets up to this long (labels, short answers) are interned


@dataclass(slots=True)  # a million examples in memory: no per-instance __dict__
class Example:
    """One training or evaluation example.

    ``input`` is the text to classify (classification) or the prompt (causal LM); ``target`` is the
    label or the completion, ``None`` for unlabeled inputs (they can still be reviewed).
    ``provenance`` says where the example came from: ``{"kind": "original"}``,
    ``{"kind": "augmented", "from": <id>, "augmenter": <name>}`` or
    ``{"kind": "feedback", "rating_id": <id>, "policy": <name>}``.

    Preference feedback uses two more fields: ``rejected`` makes the example a pair (``target`` is
    the chosen completion, ``rejected`` the other; DPO), and ``desirable`` marks a single
    completion as good or bad (KTO).
    """

    input: str
    target: str | None = None
    weight: float = 1.0
    group: str | None = None
    source: str = ""
    split: str | None = None
    provenance: dict[str, Any] = field(default_factory=lambda: {"kind": "original"})
    id: str = ""
    rejected: str | None = None
    desirable: bool | None = None

    def __post_init__(self) -> None:
        if type(self.target) is str and len(self.target) <= _INTERNED:
            # labels repeat across a million rows: one string each, not one per row
            self.target = sys.intern(self.target)
        if not self.id:
            if self.rejected is None and self.desirable is None:
                self.id = content_id(self.input, self.target)
            else:
                self.id = content_id(self.input, self.target, self.rejected, self.desirable)

    @property
    def split_key(self) -> str:
        """What decides the split: the group if there is one, else the normalised input.

        Keying on the input (not the target) keeps a relabelled example on the same side of the
        split, so a corrected label can never carry a test input into training.
        """
        if self.group:
            return "group:" + self.group
        return "input:" + " ".join(self.input.lower().split())


@dataclass
class Prediction:
    """A model's answer for one example: a label (classification) or generated text (causal LM).

    ``confidence`` is the probability of the predicted label, or the mean token probability of a
    generation; ``scores`` maps every label to its probability (classification only). ``extra``
    carries what a metric may need beyond the answer: a causal-LM trainer puts the reference
    completion's summed negative log-likelihood and token count there (``nll``, ``tokens``), so
    perplexity needs no second pass over the model.
    """

    example_id: str
    output: str
    confidence: float | None = None
    scores: dict[str, float] | None = None
    extra: dict[str, float] = field(default_factory=dict)
    # the model's own representation of the input (a 1-D float array: the classification trainer
    # gives the mean of the encoder's last hidden states), so a review sampler can pick a diverse
    # batch; None when the trainer gives none. Never stored in the database.
    embedding: Any = None
    # further answers of the same model to the same example (a causal-LM trainer's
    # num_return_sequences, for the review split): stored beside ``output`` as candidates and
    # queued in pairs for experts to rank; metrics score ``output`` only
    candidates: list["Prediction"] = field(default_factory=list)


@dataclass
class TrainResult:
    """What a trainer hands back: where the best model was saved and how training went."""

    model_dir: str
    best_metric: float | None = None
    best_step: int | None = None
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rating:
    """An expert's current (not superseded) rating of one stored output, joined with the output.

    ``verdict`` is ``approve``, ``reject``, ``skip`` or ``unclear`` (the input is unclear);
    ``corrected`` holds the corrected label or completion when the expert gave one.

    A pairwise rating compares ``output`` with ``pair_output`` (an earlier cycle's output for the
    same input): ``preferred_output_id`` is ``output_id``, ``pair_output_id`` or ``None`` (no
    preference), ``score`` and ``pair_score`` are the 1-5 scores of each, and ``verdict`` is
    ``approve`` (a preference or "both fine"), ``reject`` (both bad), ``skip`` or ``unclear``.
    """

    id: int
    output_id: int
    cycle_id: int
    reviewer: str
    verdict: str
    input: str
    output: str
    reference: str | None = None
    score: int | None = None
    corrected: str | None = None
    comment: str | None = None
    example_id: str | None = None
    pair_output_id: int | None = None
    pair_output: str | None = None
    pair_score: int | None = None
    preferred_output_id: int | None = None

    @property
    def is_pair(self) -> bool:
        return self.pair_output_id is not None


@dataclass
class ReviewCandidate:
    """A stored output offered to a review sampler.

    ``previous_*`` describe the previous cycle's output for the same input, where there is one
    (``None`` otherwise), so a sampler can prefer inputs on which two cycles disagree.
    """

    output_id: int
    example_id: str
    input: str
    output: str
    confidence: float | None = None
    scores: dict[str, float] | None = None
    previous_output: str | None = None
    previous_confidence: float | None = None
    previous_scores: dict[str, float] | None = None
    embedding: Any = None  # the prediction's ``embedding`` (1-D float array), or None


# --------------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------------


class Options(BaseModel):
    """Base for a component's options: unknown fields are errors, so config typos surface."""

    model_config = ConfigDict(extra="forbid")


class Component:
    """Base of every component kind.

    Subclasses set ``name`` (what the config refers to) and may define a nested ``Options`` model.
    ``tasks`` lists the tasks a component supports; the config check refuses other tasks.
    """

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = TASKS
    Options: ClassVar[type[BaseModel]] = Options

    def __init__(self, options: BaseModel | None = None):
        self.options = options if options is not None else self.Options()


class SourceOptions(Options):
    """Options every data source accepts.

    ``fields`` maps tuneloop's fields (``input``, ``target``, ``group``, ``weight``) to the names
    the file uses; ``split`` pins every example of the source to one split (``review`` for an
    unlabeled pool that experts label). ``path`` is resolved against the config file's folder.
    """

    path: str
    fields: dict[str, str] = {}
    split: Literal["train", "validation", "test", "review"] | None = None


class DataSource(Component):
    """Yields examples from a file, a database or a dataset.

    Raise ``tuneloop.DataError(file, message, line)`` for bad input, so the user sees the file and line.
    """

    kind = "data source"
    Options = SourceOptions

    def load(self) -> Iterator[Example]:
        raise NotImplementedError


Removal = Callable[[Example, str], None]


class Cleaner(Component):
    """Drops or fixes examples, reporting every removal with a reason through ``removed``.

    A cleaner that fixes examples says what it changed through ``changes()``. One that sets
    ``needs_tokenizer = True`` finds the model's tokenizer in ``self.tokenizer`` before ``clean``
    runs (loaded once per cycle and shared, never with the model).
    """

    kind = "cleaner"
    needs_tokenizer: ClassVar[bool] = False
    tokenizer: Any = None

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        raise NotImplementedError

    def changes(self) -> dict[str, int]:
        """What ``clean`` changed in the examples it kept, ``{reason: count}`` (``{}``: nothing).

        The cycle reads it after ``clean`` has run, next to the removals."""
        return {}


class Augmenter(Component):
    """Adds label-preserving variants of training examples (it never sees validation or test).

    Yield only the new examples; the cycle records which example each came from, so set
    ``provenance={"kind": "augmented", "from": original.id}`` on each.
    """

    kind = "augmenter"

    def augment(self, examples: list[Example], rng: random.Random) -> Iterator[Example]:
        raise NotImplementedError


class Regularizer(Component):
    """Shapes training. Override any of the four methods; the defaults change nothing.

    - ``configure(args)``: edit the dict of ``transformers.TrainingArguments`` keyword arguments.
    - ``prepare(model)``: change the model before training (dropout, frozen layers, LoRA); return it.
    - ``penalty(model)``: an extra loss term (a scalar tensor) added at every step, or ``None``.
    - ``callbacks()``: ``transformers.TrainerCallback`` objects (early stopping, for example).
    """

    kind = "regularizer"

    def configure(self, args: dict[str, Any]) -> None:
        return None

    def prepare(self, model: Any) -> Any:
        return model

    def penalty(self, model: Any) -> Any:
        return None

    def callbacks(self) -> list[Any]:
        return []


class Trainer(Component):
    """Finetunes a model on the prepared splits and predicts with it.

    ``train`` must save the best model (by the validation metric the context names) with its
    tokenizer in ``context.run_dir / "model"`` and return a ``TrainResult``. ``predict`` loads a saved
    model folder and answers for each example, in order.
    """

    kind = "trainer"

    def train(self, context: "CycleContext", splits: dict[str, list[Example]],
              regularizers: list[Regularizer]) -> TrainResult:
        raise NotImplementedError

    def predict(self, model_dir: str, examples: list[Example],
                context: "CycleContext") -> list[Prediction]:
        raise NotImplementedError


class Metric(Component):
    """Scores predictions against reference examples; returns ``{name: float}``.

    Metrics run on the validation split during training (model selection, where the trainer can
    produce predictions cheaply) and on validation and test after it (the test figures are
    reported, never used to select). Return plain floats.
    """

    kind = "metric"
    higher_is_better: ClassVar[bool] = True
    # A metric that measures the model itself (a benchmark such as lm-eval) sets this and
    # implements ``measure`` instead of ``compute``.
    measures_model: ClassVar[bool] = False

    def compute(self, predictions: list[Prediction], references: list[Example]) -> dict[str, float]:
        raise NotImplementedError

    def figure_names(self) -> list[str] | None:
        """The names of the figures ``compute`` returns, known from the options alone, or
        ``None`` when they depend on the data (per-label figures). ``tuneloop validate`` checks
        ``training.select_metric`` and ``validation.*`` promotion rules against them, so a figure
        that no metric gives fails at once rather than after training. Default: ``None``."""
        return None

    def measure(self, model_dir: str, context: "CycleContext") -> dict[str, float]:
        """Measure a saved model (``measures_model = True``): the cycle calls it on the cycle's
        model after training, and once per project on the base model, to compare the two. The
        figures are stored under the split ``benchmark``."""
        raise NotImplementedError


class FeedbackPolicy(Component):
    """Turns expert ratings into training examples for the next cycle.

    Yield ``(rating_id, example)`` pairs: the cycle records each use in ``feedback_usage`` so every
    model can be traced to the ratings that trained it. Ratings already used by an earlier cycle
    are not offered again.
    """

    kind = "feedback policy"

    def examples(self, ratings: list[Rating], task: str) -> Iterator[tuple[int, Example]]:
        raise NotImplementedError


class ReviewSampler(Component):
    """Orders stored outputs so experts see the most useful ones first; returns at most ``k``."""

    kind = "review sampler"

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        raise NotImplementedError


COMPONENT_KINDS: dict[str, type[Component]] = {
    "data_sources": DataSource,
    "cleaners": Cleaner,
    "augmenters": Augmenter,
    "regularizers": Regularizer,
    "trainers": Trainer,
    "metrics": Metric,
    "feedback_policies": FeedbackPolicy,
    "review_samplers": ReviewSampler,
}
