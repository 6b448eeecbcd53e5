"""How a progress bar looks: fitted to an 80-column terminal, and plain lines in a log file.

Why: rich's default row lets every column shrink, so at 80 columns the figures people read
first, the step count and the times, were cut ("120/1… 0:06:…") while the bar kept its width.
Here the description, the step count and both times never wrap or shrink; the bar takes what is
left (at least 10 cells), and the latest figures (loss, validation) get their own line under the
bar rather than squeezing it. Without a terminal (output to a file, CI), a live bar would be
dropped or dumped as control codes, so the display is one plain line per tenth of the work
(and at the end): ``training 60/120 (50%) elapsed 0:03:10 left 0:03:10 loss 0.41``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from datetime import timedelta
from typing import Any, Callable, Iterator

Advance = Callable[..., None]  # advance(n=1, info=None)


def columns() -> list[Any]:
    """The bar's columns: fixed-width counts and times, a flexible bar."""
    from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.table import Column

    def fixed() -> Column:
        return Column(no_wrap=True, overflow="ignore")

    return [TextColumn("[bold]{task.description}", table_column=fixed()),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=10)),
            MofNCompleteColumn(table_column=fixed()),
            TimeElapsedColumn(table_column=fixed()),
            TimeRemainingColumn(table_column=fixed())]


@contextlib.contextmanager
def live(description: str, total: int | None, *, console: Any = None) -> Iterator[Advance]:
    """A rich bar on a terminal (the figures on a line below it); plain lines otherwise."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.progress import Progress
    from rich.text import Text

    console = console or Console(stderr=False)
    if not console.is_terminal:
        with plain(description, total, stream=console.file) as advance:
            yield advance
        return
    bar = Progress(*columns(), console=console, expand=True)
    task_id = bar.add_task(description, total=total)
    figures = Text("", no_wrap=True, overflow="ellipsis", style="dim")
    with Live(Group(bar, figures), console=console, refresh_per_second=4, transient=False):

        def advance(n: int = 1, info: str | None = None) -> None:
            bar.advance(task_id, n)
            if info is not None:
                figures.plain = "  " + info

        yield advance


@contextlib.contextmanager
def plain(description: str, total: int | None, *, stream: Any = None,
          clock: Callable[[], float] = time.monotonic) -> Iterator[Advance]:
    """Plain progress lines for a log file: every tenth of ``total``, and once at the end."""
    stream = stream or sys.stdout
    started, done, shown = clock(), 0, -1
    latest = {"info": ""}

    def line() -> str:
        elapsed = clock() - started
        parts = [description, f"{done}/{total}" if total else str(done)]
        if total:
            parts.append(f"({done / total:.0%})")
        parts.append(f"elapsed {_clock(elapsed)}")
        if total and done:
            parts.append(f"left {_clock(elapsed / done * (total - done))}")
        return " ".join(parts) + (f"  {latest['info']}" if latest["info"] else "")

    def advance(n: int = 1, info: str | None = None) -> None:
        nonlocal done, shown
        done += n
        if info is not None:
            latest["info"] = info
        tenth = (done * 10 // total) if total else -1
        if total and tenth > shown and done < total:
            shown = tenth
            print(line(), file=stream, flush=True)

    yield advance
    print(line(), file=stream, flush=True)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))
