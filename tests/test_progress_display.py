"""The training progress bar at 80 columns keeps its step count and times whole, a log file
(no terminal) gets plain lines instead of control codes, and `plugins list` fits 80 columns."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from tuneloop.progress_display import live, plain

FIGURES = "loss 0.4123  val loss 0.3811  val f1 0.9023  val accuracy 0.9100  val ece 0.0412"


def screen_lines(console: Console) -> list[str]:
    raw = console.file.getvalue().replace("\r", "\n")
    return [Text.from_ansi(line).plain for line in raw.split("\n") if Text.from_ansi(
        line).plain.strip()]


def test_at_80_columns_the_bar_keeps_its_count_and_times_and_figures_go_below():
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    with live("training", 1200, console=console) as advance:
        advance(600, info=FIGURES)
        advance(600)
    bar, figures = screen_lines(console)[-2:]
    assert bar.startswith("training ") and "1200/1200" in bar
    assert bar.count(":") == 4 and "…" not in bar  # elapsed h:mm:ss and remaining h:mm:ss
    assert len(bar) <= 80 and len(figures) <= 80
    assert figures.strip().startswith("loss 0.4123  val loss 0.3811")


def test_without_a_terminal_progress_is_plain_lines_every_tenth():
    console = Console(file=io.StringIO(), width=80, force_terminal=False)
    with live("training", 120, console=console) as advance:
        for step in range(120):
            advance(1, info="loss 0.41" if step == 59 else None)
    text = console.file.getvalue()
    assert "\x1b" not in text and "━" not in text
    lines = text.splitlines()
    assert lines[0].startswith("training 1/120 (1%) elapsed 0:00:00")
    assert lines[-1].startswith("training 120/120 (100%) elapsed") and lines[-1].endswith(
        "loss 0.41")
    assert len(lines) == 11  # the first step, every tenth, the end


def test_plain_lines_estimate_the_time_left():
    now = [0.0]
    stream = io.StringIO()
    with plain("training", 100, stream=stream, clock=lambda: now[0]) as advance:
        now[0] = 50.0
        advance(10)
        now[0] = 100.0
        advance(10)
    assert "training 20/100 (20%) elapsed 0:01:40 left 0:06:40" in stream.getvalue()


def test_plugins_list_fits_80_columns_without_breaking_a_name():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "tuneloop.cli", "plugins", "list"],
                            capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(len(line) <= 80 for line in lines)
    words = {word.strip(",") for line in lines for word in line.split()}
    for name in ("register_feedback_policies", "tuneloop.plugins.augmenters",
                 "drop_near_duplicates", "normalize_whitespace"):
        assert name in words, name  # whole, on one line


def test_counts_print_as_whole_numbers_and_scores_with_four_decimals():
    from tuneloop.cli.models import figure

    assert figure(17.0, "human.ratings") == "17" and figure(3.0, "reviewers") == "3"
    assert figure(1.0, "validation.accuracy") == "1.0000" and figure(0.5) == "0.5000"
    assert figure(None, "human.ratings") == "-"
