"""Progress bars for long commands (verify, export, migrate), on a terminal only.

`progress_bars()` yields a `Meter` when standard error (where messages go) is a
terminal: call it as `meter(label, done, total)` while work runs, and each label gets a
bar with a count, the time spent and the time left, drawn by `rich` and cleared when the
command ends. When standard error is not a terminal (a pipe, a file, a CI log) it yields
None and nothing is drawn, so output that scripts read stays exactly what it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Meter = Callable[[str, int, int], None]
"""Called as (label, done, total) while work runs; total may grow as it goes."""


def console() -> Console:
    """Where progress is drawn: standard error. Tests replace this to force a terminal."""
    return Console(stderr=True)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Meter | None]:
    """A meter drawing bars on standard error when it is a terminal, else None. Callers
    pass `enabled=False` when their own output goes to that terminal."""
    target = console()
    if not enabled or not target.is_terminal or target.is_dumb_terminal:
        yield None
        return
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=target, transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def meter(label: str, done: int, total: int) -> None:
        task = tasks.get(label)
        if task is None:
            task = tasks[label] = bars.add_task(label, total=total)
        bars.update(task, completed=done, total=max(total, done))

    with bars:
        yield meter


def for_label(meter: Meter | None, label: str) -> Callable[[int, int], None] | None:
    """A (done, total) callback drawing one labelled bar of `meter` (None without one)."""
    if meter is None:
        return None
    return lambda done, total: meter(label, done, total)
