"""What a cycle hands to its components and hooks: ids, config, store, and a few services.

Components reach the database, the run folder and the progress display only through this object,
so a trainer written for tuneloop can be tested with a context built by ``tuneloop.testing``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.components import Metric
    from tuneloop.config import ProjectConfig
    from tuneloop.store import Store

Advance = Callable[..., None]  # advance(n=1, info=None)


class Progress:
    """Progress bars for training, evaluation and generation (rich), silent when ``quiet``."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Advance]:
        if self.quiet:
            yield lambda n=1, info=None: None
            return
        from tuneloop.progress_display import live  # 80 columns; plain lines without a TTY

        with live(description, total) as advance:
            yield advance


@dataclass
class CycleContext:
    """One cycle's identity and services.

    ``start_model`` is what training starts from (the base model or the latest promoted one);
    ``labels`` is the label set for classification (``None`` for causal LM); ``metrics`` are the
    configured metric components, which trainers use for validation during training.
    """

    cycle_id: int
    config: "ProjectConfig"
    store: "Store | None"
    run_dir: Path
    start_model: str
    seed: int
    labels: list[str] | None = None
    metrics: list["Metric"] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    log_callback: Callable[[int, dict[str, float]], None] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    # the split a ``Trainer.predict`` call answers ("validation", "test", "review"), set by the
    # cycle before each call; None elsewhere (tuneloop predict, tests). A causal-LM trainer gives
    # several candidates per prompt for "review" only.
    predicting: str | None = None

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def select_metric(self) -> str:
        return self.config.select_metric

    def log(self, step: int, logs: dict[str, float]) -> None:
        """Stream training figures: to the store (with their step) and the ``training_log`` hook."""
        if self.log_callback is not None:
            self.log_callback(step, logs)
