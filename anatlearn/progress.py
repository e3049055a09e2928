"""The one progress display of anatlearn: a rich bar on a terminal, silence (or one line) otherwise.

Every long step (pretrain epochs, embed, prep, explain, evaluate, report figures, the study, fine-tuning)
uses :func:`progress`, so what a user sees is the same everywhere and nothing is drawn into a log file:

    with progress("embedding", total=len(dataset)) as bar:
        for batch in loader:
            ...
            bar.advance(len(batch), description=f"embedding ({done} of {n})")

``enabled=None`` (the default) means "only when stderr is a terminal"; ``True`` forces the bar (tests),
``False`` turns it off. :func:`note` prints one line on stderr whatever the TTY, for summaries that belong
in a log (an epoch's loss, a "wrote" line).
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def is_terminal() -> bool:
    """True when stderr is an interactive terminal (where a live bar belongs)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class Bar:
    """A handle on one running bar; all methods are no-ops when the display is off."""

    def __init__(self, rich_progress=None, task=None):
        self._progress, self._task = rich_progress, task

    @property
    def active(self) -> bool:
        return self._progress is not None

    def advance(self, n: float = 1, description: str | None = None) -> None:
        if self._progress is not None:
            kwargs = {"description": description} if description is not None else {}
            self._progress.update(self._task, advance=n, **kwargs)

    def update(self, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        if self._progress is not None:
            kwargs = {k: v for k, v in (("completed", completed), ("total", total),
                                         ("description", description)) if v is not None}
            self._progress.update(self._task, **kwargs)


@contextlib.contextmanager
def progress(description: str, total: float | None, completed: float = 0, enabled: bool | None = None,
             transient: bool = True, eta: bool = False) -> Iterator[Bar]:
    """A progress bar for ``total`` units of work, shown on stderr only when it is a terminal.

    ``transient`` removes the bar when the work ends (the caller prints its own summary line); ``eta``
    adds the elapsed and remaining time columns, for steps that take minutes (prep, the study).
    """
    show = is_terminal() if enabled is None else bool(enabled)
    if not show:
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if eta:
        columns.append(TimeRemainingColumn())
    bar = Progress(*columns, transient=transient, console=Console(file=sys.stderr))
    with bar:
        task = bar.add_task(description, total=total, completed=completed)
        yield Bar(bar, task)


def note(message: str) -> None:
    """One line on stderr, terminal or not (summaries that belong in a log)."""
    print(message, file=sys.stderr, flush=True)


__all__ = ["Bar", "is_terminal", "note", "progress"]
