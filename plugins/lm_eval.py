"""``lm_eval``: lm-evaluation-harness benchmarks on the cycle's model, as a forgetting guard.

Finetuning on a narrow domain can wipe out what a language model knew. This metric runs
lm-evaluation-harness tasks in-process on the saved model of every cycle and, once per project,
on the base model; a promotion rule then refuses a model that lost more than a tolerance::

    evaluation:
      metrics:
        - exact_match
        - {name: lm_eval, tasks: [tuneloop_capitals], batch_size: 16, limit: 200}
    promotion:
      rules:
        - {metric: benchmark.lm_eval.*.acc, at_least: base, tolerance: 0.02}  # every task

Tasks come from lm-eval's registry or from local folders of task YAMLs (``include_path``,
relative to the config file), so a project can benchmark offline on its own data. tuneloop ships
one small local task, ``tuneloop_capitals`` (``lm_eval_tasks/``), always on the path. lm-eval's own
registry (thousands of YAMLs, ~5 s to index) is only read when a task is not found locally.

Figures are named ``lm_eval.<task>.<metric>`` (``lm_eval.tuneloop_capitals.acc``), with the
filter appended when it is not ``none`` (``lm_eval.gsm8k.exact_match.strict-match``), and
``..._stderr`` beside each where lm-eval gives one. lm-eval is imported only inside ``measure``:
it takes seconds.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from pydantic import Field

from tuneloop import Metric, Options, TuneloopError, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.context import CycleContext

SHIPPED_TASKS = Path(__file__).resolve().parent / "lm_eval_tasks"


class LMEvalOptions(Options):
    tasks: list[str] = Field(min_length=1, description="task, group or tag names")
    include_path: list[str] = Field(
        default_factory=list, description="folders of local task YAMLs, relative to the config")
    batch_size: int = Field(8, ge=1)
    limit: float | None = Field(
        None, gt=0, description="examples per task: a count, or a fraction when below 1")
    num_fewshot: int | None = Field(None, ge=0)
    bootstrap_iters: int = Field(
        100, ge=0, description="resamples for the stderr of non-mean metrics (0: no stderr)")


class LMEval(Metric):
    """Runs lm-evaluation-harness tasks on a saved causal LM (``HFLM`` around the loaded model).

    ``measures_model``: the cycle calls ``measure`` on its trained model and once per project on
    the base model; figures go to the split ``benchmark`` as ``lm_eval.<task>.<metric>``.
    """

    name = "lm_eval"
    tasks = ("causal-lm",)
    measures_model = True
    Options = LMEvalOptions

    def measure(self, model_dir: str, context: "CycleContext") -> dict[str, float]:
        from lm_eval.evaluator import evaluate
        from lm_eval.models.huggingface import HFLM

        from tuneloop.plugins.trainers.causal_lm import load_causal_lm
        from tuneloop.plugins.trainers.common import (device, quiet_loading,
                                                      quiet_transformers_progress)

        with quiet_transformers_progress():
            model, tokenizer = load_causal_lm(model_dir)
        model.to(device()).eval()
        # lm-eval pads its own batches; transformers' padding advice is noise here
        with quiet_lm_eval(), quiet_loading():
            # with a model object, HFLM takes its device from the model and ignores the
            # batch_size simple_evaluate would pass: both are set here
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=self.options.batch_size)
            loaded = self.task_manager(context).load(list(self.options.tasks))
            for task in loaded["tasks"].values():
                configure_task(task, self.options.num_fewshot, context.seed)
            limit = self.options.limit
            if limit is not None and limit >= 1:
                limit = int(limit)
            results = evaluate(lm=lm, task_dict=loaded, limit=limit,
                               bootstrap_iters=self.options.bootstrap_iters, log_samples=False)
        return figures(results or {})

    def task_manager(self, context: "CycleContext") -> Any:
        """lm-eval's task index: the shipped and configured folders, plus lm-eval's registry only
        when a task is not found in them."""
        from lm_eval.tasks import TaskManager

        folders = [SHIPPED_TASKS]
        for folder in self.options.include_path:
            path = context.config.resolve(folder)
            if not path.is_dir():
                raise TuneloopError(f"evaluation.metrics: lm_eval include_path {folder}: "
                                    f"no such folder ({path})")
            folders.append(path)
        manager = TaskManager(include_path=[str(folder) for folder in folders],
                              include_defaults=False)
        if all(task in manager.all_tasks for task in self.options.tasks):
            return manager
        manager = TaskManager(include_path=[str(folder) for folder in folders])
        unknown = [task for task in self.options.tasks if task not in manager.all_tasks]
        if unknown:
            hints = []
            for task in unknown:
                close = difflib.get_close_matches(task, manager.all_tasks, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                hints.append(f'"{task}"{hint}')
            raise TuneloopError(f"evaluation.metrics: lm_eval has no task {'; '.join(hints)}; "
                                f"local tasks are read from {', '.join(map(str, folders))}")
        return manager


def configure_task(task: Any, num_fewshot: int | None, seed: int) -> None:
    """What ``simple_evaluate`` does to each task before evaluating: the few-shot count (a task
    that sets 0 itself keeps it) and a fixed seed for choosing the few-shot examples."""
    configured = task.get_config("num_fewshot")
    if num_fewshot is not None and configured != 0:
        task.set_config(key="num_fewshot", value=num_fewshot)
    elif configured is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=seed)


def figures(results: dict[str, Any]) -> dict[str, float]:
    """lm-eval's ``results`` (``{"task": {"acc,none": 0.5, "acc_stderr,none": 0.1}}``) as flat
    figures ``lm_eval.task.acc`` and ``lm_eval.task.acc_stderr``; non-numbers ("N/A") are left
    out."""
    flat: dict[str, float] = {}
    for task, values in (results.get("results") or {}).items():
        for key, value in values.items():
            if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            metric, _, filter_name = key.partition(",")
            suffix = "" if filter_name == "none" else f".{filter_name}"
            if metric.endswith("_stderr"):
                name = f"lm_eval.{task}.{metric.removesuffix('_stderr')}{suffix}_stderr"
            else:
                name = f"lm_eval.{task}.{metric}{suffix}"
            flat[name] = float(value)
    return flat


@contextlib.contextmanager
def quiet_lm_eval() -> Iterator[None]:
    """lm-eval logs every step at INFO and draws a tqdm bar per request type; a cycle shows its
    own progress, so keep only lm-eval's errors for the duration."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


@hookimpl
def register_metrics(register):
    register(LMEval)
