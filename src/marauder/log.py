"""Console (rich) and per-stage file logging, plus a progress bar helper."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler

# emoji off: a name such as ":fish:" in a concept or file name is printed as written
console = Console(stderr=True, emoji=False)
T = TypeVar("T")
_FILE_HANDLER_ATTR = "_marauder_stage_file"


def get_logger(name: str = "marauder") -> logging.Logger:
    return logging.getLogger(name if name.startswith("marauder") else f"marauder.{name}")


def setup_logging(log_file: str | Path | None = None, level: str = "INFO") -> logging.Logger:
    """Log to the console and, when given, to logs/<stage>.log (appending across runs)."""
    root = logging.getLogger("marauder")
    root.setLevel(level)
    root.propagate = False
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    for h in [h for h in root.handlers if getattr(h, _FILE_HANDLER_ATTR, False)]:
        root.removeHandler(h)
        h.close()
    if log_file is not None:
        log_file = Path(log_file)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        setattr(fh, _FILE_HANDLER_ATTR, True)
        root.addHandler(fh)
    return root


def progress(items: Iterable[T], description: str, total: int | None = None,
             rate_unit: str | None = None) -> Iterator[T]:
    """Iterate with a progress bar (count, rate in `rate_unit`/s when given, elapsed, ETA) on the
    console; off a terminal the items pass straight through, with no per-item cost."""
    if not console.is_terminal:
        yield from items
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed or 0:.1f} {rate_unit}/s")

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               Rate() if rate_unit else TaskProgressColumn(), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
