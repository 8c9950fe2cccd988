"""What `marauder download` shows at the end: a per-concept table."""

from __future__ import annotations

from dataclasses import dataclass

from ...log import console, get_logger

log = get_logger("download")


@dataclass
class ConceptSummary:
    """One row of the final table: what happened to one asked concept."""

    asked: str
    class_name: str
    concepts: int
    found: int = 0
    downloaded: int = 0
    present: int = 0
    failed: int = 0
    boxes: int = 0


def print_summary(summaries: list[ConceptSummary], counts: dict, failures: dict) -> None:
    from rich.table import Table

    table = Table(title="FathomNet download")
    for col in ("asked", "class", "concepts", "found", "downloaded", "already here", "failed", "boxes"):
        table.add_column(col, justify="left" if col in ("asked", "class") else "right")
    for s in summaries:
        table.add_row(s.asked, s.class_name, str(s.concepts), str(s.found), str(s.downloaded), str(s.present),
                      str(s.failed), str(s.boxes))
    console.print(table)
    log.info("downloaded %d, already present %d, failed %d", counts["downloaded"], counts["present"],
             len(failures))
