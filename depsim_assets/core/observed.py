"""Observed post-release rates, and the rows the scorecard scores (depsim and the baselines)."""

from __future__ import annotations

import polars as pl

from depsim_assets.core.config import PrefixFilter, StudyConfig
from depsim_assets.core.stats import (
    PER,
    detection_floor,
    direction,
    exact_interval,
    paired_comparison,
)


def filter_prefix_ids(prefixes: pl.DataFrame, f: PrefixFilter | None) -> pl.Series:
    if f is None:
        return prefixes["prefix_id"]
    values = prefixes["attributes"].str.json_path_match(f"$.{f.attribute}")
    return prefixes.filter(values.is_in(f.in_).fill_null(False))["prefix_id"]


def observed_from_labels(labels: pl.DataFrame, prefixes: pl.DataFrame, grader: str, f: PrefixFilter | None, alpha: float) -> pl.DataFrame:
    keep = filter_prefix_ids(prefixes, f)
    ok = labels.filter((pl.col("grader_id") == grader) & pl.col("eligible") & (pl.col("status") == "ok") & pl.col("prefix_id").is_in(keep))
    rows = []
    for (category,), g in ok.group_by("category", maintain_order=True):
        n, k = len(g), int(g["flagged"].sum())
        lo, hi = exact_interval(k, n, alpha)
        rows.append({"category": category, "source": f"labels:{grader}", "n": n, "flagged": k, "rate_per_100k": k / n * PER,
                     "lo_per_100k": lo * PER, "hi_per_100k": hi * PER, "floor_per_100k": detection_floor(n) * PER})
    return pl.DataFrame(rows) if rows else pl.DataFrame(schema={"category": pl.String})


def observed_from_file(frame: pl.DataFrame, release: str, alpha: float) -> pl.DataFrame:
    rows = []
    for r in frame.filter(pl.col("release") == release).iter_rows(named=True):
        n, k = int(r["n"]), int(r["flagged"])
        lo, hi = exact_interval(k, n, alpha)
        rows.append({"category": r["category"], "source": "file", "n": n, "flagged": k, "rate_per_100k": k / n * PER if n else None,
                     "lo_per_100k": lo * PER, "hi_per_100k": hi * PER, "floor_per_100k": detection_floor(n) * PER if n else None})
    return pl.DataFrame(rows) if rows else pl.DataFrame(schema={"category": pl.String})


CHANGES_SCHEMA = pl.Schema({"release": pl.String, "category": pl.String, "obs_ratio": pl.Float64, "obs_ratio_lo": pl.Float64,
                            "obs_ratio_hi": pl.Float64})


def observed_changes(labels: pl.DataFrame, prefixes: pl.DataFrame, cfg: StudyConfig) -> pl.DataFrame:
    """Observed change of each release vs its incumbent, paired on the same post-release prefixes."""
    obs = cfg.post_release.observed
    if obs is None or obs.grader is None or labels.is_empty():
        return CHANGES_SCHEMA.to_frame()
    keep = filter_prefix_ids(prefixes, obs.prefix_filter)
    base = labels.filter((pl.col("grader_id") == obs.grader) & pl.col("eligible") & (pl.col("status") == "ok") & pl.col("prefix_id").is_in(keep))
    rows = []
    for rel in cfg.releases:
        if rel.incumbent is None:
            continue
        for category in base["category"].unique().sort().to_list():
            def pick(name: str, cat: str = category) -> pl.DataFrame:
                return base.filter((pl.col("release") == name) & (pl.col("category") == cat)).select("prefix_id", "sample_index", "flagged")

            pairs = pick(rel.name).join(pick(rel.incumbent), on=["prefix_id", "sample_index"], suffix="_inc")
            if pairs.is_empty():
                continue
            r = paired_comparison(pairs["flagged_inc"].to_numpy(), pairs["flagged"].to_numpy())
            rows.append({"release": rel.name, "category": category, "obs_ratio": r.ratio, "obs_ratio_lo": r.ratio_lo, "obs_ratio_hi": r.ratio_hi})
    return pl.DataFrame(rows, schema=CHANGES_SCHEMA) if rows else CHANGES_SCHEMA.to_frame()


def challenging_rows(labels: pl.DataFrame, prefixes: pl.DataFrame, cfg: StudyConfig, graders: dict[str, str]) -> pl.DataFrame:
    """The challenging-prompt baseline: each release's rate on the curated adversarial source, graded by the
    same grader as its forecast, with a direction from the paired test against the incumbent on the same
    prompts. Releases without completions on that source get no row (the scorecard says unavailable)."""
    src = cfg.post_release.challenging_source
    empty = pl.DataFrame(schema={"release": pl.String, "category": pl.String})
    if src is None:
        return empty
    ids = prefixes.filter(pl.col("source") == src)["prefix_id"]
    base = labels.filter(pl.col("prefix_id").is_in(ids) & pl.col("eligible") & (pl.col("status") == "ok"))
    rows = []
    incumbents = {r.name: r.incumbent for r in cfg.releases}
    for (release, category), g in base.group_by("release", "category", maintain_order=True):
        g = g.filter(pl.col("grader_id") == graders.get(category, ""))
        if g.is_empty():
            continue
        n, k = len(g), int(g["flagged"].sum())
        lo, hi = exact_interval(k, n)
        predicted = None
        incumbent = incumbents.get(release)
        inc = base.filter((pl.col("release") == (incumbent or "")) & (pl.col("category") == category) & (pl.col("grader_id") == graders[category]))
        pairs = g.select("prefix_id", "sample_index", "flagged").join(inc.select("prefix_id", "sample_index", inc_flag="flagged"), on=["prefix_id", "sample_index"])
        if incumbent and len(pairs):
            r = paired_comparison(pairs["inc_flag"].to_numpy(), pairs["flagged"].to_numpy())
            predicted = direction(r.p_value, r.b, r.c, cfg.forecasting.direction_level)
        rows.append({"release": release, "category": category, "method": "challenging_prompts", "predicted_direction": predicted,
                     "forecast_rate": k / n * PER, "forecast_lo": lo * PER, "forecast_hi": hi * PER, "floor": detection_floor(n) * PER})
    return pl.DataFrame(rows) if rows else empty


def scoring_rows(ledger: pl.DataFrame, observed: pl.DataFrame, changes: pl.DataFrame, cfg: StudyConfig,
                 challenging: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows for depsim's forecasts (from the ledger) and the previous-production-rate and
    challenging-prompt baselines."""
    incumbents = {r.name: r.incumbent for r in cfg.releases}
    obs = observed.select("release", "category", observed_rate="rate_per_100k", observed_lo="lo_per_100k", observed_hi="hi_per_100k",
                          observed_floor="floor_per_100k")
    depsim = ledger.select(
        "release", "category", method=pl.lit("depsim"), predicted_direction=pl.col("direction") if "direction" in ledger.columns else pl.lit(None),
        forecast_rate="rate_per_100k", forecast_lo="cp_lo_per_100k", forecast_hi="cp_hi_per_100k", floor="detection_floor_per_100k",
    )
    inc = pl.DataFrame({"release": list(incumbents), "incumbent": list(incumbents.values())}, schema={"release": pl.String, "incumbent": pl.String})
    previous = (
        inc.drop_nulls("incumbent")
        .join(obs.rename({"release": "incumbent"}), on="incumbent")
        .select("release", "category", method=pl.lit("previous_production_rate"), predicted_direction=pl.lit("no detectable change"),
                forecast_rate="observed_rate", forecast_lo="observed_lo", forecast_hi="observed_hi", floor="observed_floor")
    )
    parts = [depsim.with_columns(pl.col("predicted_direction").cast(pl.String)), previous]
    if challenging is not None and "method" in challenging.columns:
        parts.append(challenging)
    rows = pl.concat(parts, how="diagonal_relaxed")
    rows = rows.join(obs, on=["release", "category"], how="inner").join(changes, on=["release", "category"], how="left")
    return rows.with_columns(floor=pl.max_horizontal("floor", "observed_floor"))
