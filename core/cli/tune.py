"""``tuneloop tune``: hyperparameter search over ``training.search_space`` (see tuneloop.tuning)."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

console = Console()


@click.command()
@click.argument("config", default="tuneloop.yaml", type=click.Path(dir_okay=False))
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True,
              help="how many settings to try (grid: at most the grid's size)")
@click.option("--strategy", type=click.Choice(["grid", "random", "bayes"]), default="bayes",
              show_default=True, help="bayes is optuna's TPE")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the sampler")
@click.option("--no-pruning", is_flag=True, help="let every trial finish")
@click.option("--apply", "apply_best", is_flag=True,
              help="write the best values into CONFIG, for the next cycle")
@click.option("--quiet", is_flag=True, help="no progress bars")
def tune(config: str, trials: int, strategy: str, seed: int, no_pruning: bool, apply_best: bool,
         quiet: bool) -> None:
    """Search hyperparameters over training.search_space in CONFIG.

    Each trial trains on the training split and is scored on the validation split with
    training.select_metric; the test split is never used. Poor trials are stopped early on their
    validation figures. Every trial is stored in the project database.

    \b
    training:
      search_space:
        learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}
        batch_size: [16, 32]
        regularizers.dropout.p: {low: 0.0, high: 0.3}
    """
    from tuneloop import tuning
    from tuneloop.config import load_config
    from tuneloop.config_checks import check_model

    loaded = load_config(config)
    check_model(loaded, config)
    echo = (lambda message: None) if quiet else (lambda message: console.print(f"[dim]{message}"))
    result = tuning.tune(loaded, trials=trials, strategy=strategy, seed=seed,
                         pruning=not no_pruning, quiet=quiet, echo=echo)
    console.print(summary_table(result))
    best = result.best
    if best is None:
        console.print("[yellow]No trial completed.[/]")
        return
    console.print(f"Best: trial {best.number}, validation {result.metric} {best.value:.4f}")
    if apply_best:
        params, in_place = tuning.apply_best(loaded, result)
        note = "" if in_place else f" (rewritten; the original is in {config}.bak)"
        console.print(f"Wrote {', '.join(f'{k}={v}' for k, v in params.items())} "
                      f"into {config}{note}. The next [bold]tuneloop run[/] uses them.")
    else:
        console.print(f"Run again with [bold]--apply[/] to write them into {config}.")


def summary_table(result: Any) -> Table:
    """Every trial, best first: completed by value, then pruned, then failed."""
    paths = list(result.trials[0].params) if result.trials else []
    table = Table(title=f"Study {result.study}: {result.strategy}, "
                        f"{result.direction} validation {result.metric}")
    for column in ("trial", "state", result.metric, *paths, "seconds"):
        table.add_column(column, justify="right" if column != "state" else "left")
    best = result.best
    order = {"complete": 0, "pruned": 1, "failed": 2, "running": 3}
    sign = -1 if result.direction == "maximize" else 1

    def key(trial: Any) -> tuple:
        return (order[trial.state], sign * trial.value if trial.value is not None else 0.0)

    for trial in sorted(result.trials, key=key):
        table.add_row(str(trial.number), trial.state,
                      f"{trial.value:.4f}" if trial.value is not None else "-",
                      *(format_value(trial.params[path]) for path in paths),
                      f"{trial.seconds:.1f}",
                      style="bold green" if best is not None and trial is best else None)
    return table


def format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


commands = [tune]
