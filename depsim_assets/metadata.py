"""Helpers that turn frames into Dagster metadata (tables the UI renders)."""

import dagster as dg
import polars as pl


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")[:200]


def md_table(frame: pl.DataFrame, rows: int = 50) -> dg.MetadataValue:
    if frame.is_empty():
        return dg.MetadataValue.md("_empty_")
    head = frame.head(rows)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.iter_rows()]
    if len(frame) > rows:
        lines.append(f"\n_{len(frame) - rows} more rows_")
    return dg.MetadataValue.md("\n".join(lines))
