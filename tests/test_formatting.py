"""Numbers for people: one formatter, no scientific notation, decision columns first, Dagster table types."""

import dagster as dg
import polars as pl

from depsim_assets.core.formatting import display_rows, format_value
from depsim_assets.metadata import table


def test_numbers_read_as_people_write_them() -> None:
    assert format_value("rate_per_100k", 43556.0) == "43,556"
    assert format_value("cp_lo_per_100k", 2.5e-3) == "0.00"
    assert format_value("rate_ratio", 4.0) == "×4.00" and format_value("rate_ratio", float("inf")) == "∞"
    assert format_value("p_adjusted_bh", 1.115e-25) == "< 0.001" and format_value("p_value", 0.0421) == "0.042"
    assert format_value("sensitivity", 0.9) == "0.900" and format_value("pairs", 92000) == "92,000"
    assert format_value("direction", "up") == "up" and format_value("anything", None) == ""


def test_tables_put_decisions_first_without_scientific_notation() -> None:
    frame = pl.DataFrame({"pairs": [450], "p_adjusted_bh": [1.1e-25], "rate_ratio": [1e-7], "direction": ["down"],
                          "category": ["refusal"], "incumbent_rate_per_100k": [9.2e4]})
    columns, rows = display_rows(frame, first=("category", "direction"))
    assert columns[:2] == ["category", "direction"]
    assert not any("e+" in v or "e-" in v for v in rows[0])
    meta = table(frame, first=("category", "direction"))
    assert isinstance(meta, dg.TableMetadataValue)
    assert [c.name for c in meta.schema.columns][:2] == ["category", "direction"]
    assert meta.records[0].data["incumbent_rate_per_100k"] == "92,000"
