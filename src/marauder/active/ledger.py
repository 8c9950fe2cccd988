"""outputs/active_learning/ledger.csv: every image ever sent for annotation, and in which package.

The next selection skips these, so a vendor is never paid twice for the same frame.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import DataError
from ..fsio import atomic_write_text


@dataclass(frozen=True)
class LedgerRow:
    sha256: str
    package_id: str
    image_id: int
    file: str
    source: str
    exported_at: str


_COLUMNS = [f.name for f in fields(LedgerRow)]


def read_ledger(path: str | Path) -> list[LedgerRow]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != _COLUMNS:
            raise DataError(f"unexpected ledger columns {reader.fieldnames}; expected {_COLUMNS}", file=str(path))
        for lineno, rec in enumerate(reader, start=2):
            try:
                rows.append(LedgerRow(**{**rec, "image_id": int(rec["image_id"])}))
            except (TypeError, ValueError) as exc:
                raise DataError(f"malformed ledger row ({exc})", file=str(path), line=lineno) from None
    return rows


def sent_hashes(path: str | Path) -> set[str]:
    return {r.sha256 for r in read_ledger(path)}


def append_ledger(path: str | Path, new_rows: list[LedgerRow]) -> None:
    """Rewrite the ledger with the new rows appended (atomic: readers see old or new, never half)."""
    rows = read_ledger(path) + list(new_rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    atomic_write_text(path, buf.getvalue())
