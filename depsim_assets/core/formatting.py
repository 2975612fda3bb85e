"""Numbers formatted for people reading results in the UI: one rule per kind of column, tested.

Rates per 100k get thousands separators, ratios two decimals, p-values three (or `< 0.001`),
probabilities three, counts separators; nothing is ever in scientific notation. Warehouse tables keep
numbers numeric; this is for display only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl


def kind_of(column: str) -> str:
    c = column.lower()
    if "per_100k" in c or c in ("rate", "lo", "hi", "forecast_rate", "observed_rate", "forecast_lo", "forecast_hi",
                                "observed_lo", "observed_hi", "floor"):
        return "rate"
    if c.startswith("p_") or c in ("p_value", "p", "pvalue"):
        return "p"
    if "ratio" in c or c.endswith("_error") or c in ("median_x", "p90_x", "max_x"):
        return "ratio"
    if c in ("sensitivity", "specificity", "precision", "kappa", "coverage", "interval_coverage", "directional_accuracy",
             "abstention_rate", "false_alarm_rate", "inclusion_prob") or c.endswith(("_lo", "_hi", "_rate", "_share")):
        return "probability"
    return "plain"


def format_value(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).replace("\n", " ")[:200]
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    kind = kind_of(column)
    if isinstance(value, int) and kind in ("plain", "rate"):
        return f"{value:,}"
    if kind == "p":
        return "< 0.001" if value < 0.001 else f"{value:.3f}"
    if kind == "ratio":
        return f"×{value:,.2f}"
    if kind == "rate":
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 1 else f"{value:.2f}"
    if kind == "probability":
        return f"{value:.3f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"


def display_rows(frame: pl.DataFrame, first: Sequence[str] = ()) -> tuple[list[str], list[list[str]]]:
    """Columns (the decision columns first) and every row formatted as text."""
    columns = [c for c in first if c in frame.columns] + [c for c in frame.columns if c not in first]
    rows = [[format_value(c, v) for c, v in zip(columns, row, strict=True)] for row in frame.select(columns).iter_rows()]
    return columns, rows
