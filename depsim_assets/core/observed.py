"""Observed post-release rates, and the rows the scorecard scores (depsim and the baselines)."""

from __future__ import annotations

import numpy as np
import polars as pl

from depsim_assets.core.config import StudyConfig
from depsim_assets.core.forecast_config import PrefixFilter
from depsim_assets.core.forecast import with_directions
from depsim_assets.core.paired import paired_comparison
from depsim_assets.core.scoring import complete
from depsim_assets.core.stats import PER, detection_floor, exact_interval


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


def observed_from_counts(counts: pl.DataFrame, source: str, alpha: float) -> pl.DataFrame:
    """Observed rates from (category, n, flagged) counts, with exact intervals and the detection floor."""
    rows = []
    for r in counts.iter_rows(named=True):
        n, k = int(r["n"]), int(r["flagged"])
        lo, hi = exact_interval(k, n, alpha)
        rows.append({"category": r["category"], "source": source, "n": n, "flagged": k, "rate_per_100k": k / n * PER if n else None,
                     "lo_per_100k": lo * PER, "hi_per_100k": hi * PER, "floor_per_100k": detection_floor(n) * PER if n else None})
    return pl.DataFrame(rows) if rows else pl.DataFrame(schema={"category": pl.String})


def observed_from_file(frame: pl.DataFrame, release: str, alpha: float) -> pl.DataFrame:
    return observed_from_counts(frame.filter(pl.col("release") == release), "file", alpha)


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
            r = paired_comparison(pairs["flagged_inc"].to_numpy(), pairs["flagged"].to_numpy(), clusters_of(pairs, prefixes))
            rows.append({"release": rel.name, "category": category, "obs_ratio": r.ratio, "obs_ratio_lo": r.ratio_lo, "obs_ratio_hi": r.ratio_hi})
    return pl.DataFrame(rows, schema=CHANGES_SCHEMA) if rows else CHANGES_SCHEMA.to_frame()


def challenging_rows(labels: pl.DataFrame, prefixes: pl.DataFrame, cfg: StudyConfig, graders: dict[str, str]) -> pl.DataFrame:
    """The challenging-prompt baseline: each release's rate on the curated adversarial source, graded by the
    same grader as its forecast, with a direction from the paired test against the incumbent on the same
    prompts, BH-adjusted across a release's categories like depsim's. Releases without completions on that
    source get no row (the scorecard says unavailable)."""
    src = cfg.post_release.challenging_source
    empty = pl.DataFrame(schema={"release": pl.String, "category": pl.String})
    if src is None:
        return empty
    ids = prefixes.filter(pl.col("source") == src)["prefix_id"]
    base = labels.filter(pl.col("prefix_id").is_in(ids) & pl.col("eligible") & (pl.col("status") == "ok"))
    incumbents = {r.name: r.incumbent for r in cfg.releases}
    parts = []
    for (release,), g in base.group_by("release", maintain_order=True):
        rows = []
        for category in sorted(g["category"].unique().to_list()):
            own = g.filter((pl.col("category") == category) & (pl.col("grader_id") == graders.get(category, "")))
            if own.is_empty():
                continue
            n, k = len(own), int(own["flagged"].sum())
            lo, hi = exact_interval(k, n)
            inc = base.filter((pl.col("release") == (incumbents.get(release) or "")) & (pl.col("category") == category)
                              & (pl.col("grader_id") == graders[category]))
            pairs = own.select("prefix_id", "sample_index", "flagged").join(inc.select("prefix_id", "sample_index", inc_flag="flagged"),
                                                                            on=["prefix_id", "sample_index"])
            r = paired_comparison(pairs["inc_flag"].to_numpy(), pairs["flagged"].to_numpy(), clusters_of(pairs, prefixes)) if len(pairs) else None
            rows.append({"release": release, "category": category, "method": "challenging_prompts",
                         "p_value": r.p_value if r else None, "incumbent_only": r.b if r else 0, "candidate_only": r.c if r else 0,
                         "forecast_rate": k / n * PER, "forecast_lo": lo * PER, "forecast_hi": hi * PER, "floor": detection_floor(n) * PER})
        if rows:
            table = pl.DataFrame(rows, schema_overrides={"p_value": pl.Float64})
            tested = table.filter(pl.col("p_value").is_not_null())
            directed = with_directions(tested, cfg.forecasting.direction_level) if len(tested) else tested.with_columns(
                direction=pl.lit(None, pl.String))
            parts.append(table.join(directed.select("category", predicted_direction="direction"), on="category", how="left"))
    if not parts:
        return empty
    return pl.concat(parts, how="diagonal_relaxed").select(
        "release", "category", "method", "predicted_direction", "forecast_rate", "forecast_lo", "forecast_hi", "floor")


def clusters_of(pairs: pl.DataFrame, prefixes: pl.DataFrame) -> np.ndarray:
    """Each pair's conversation (its prefix id when the conversation is unknown)."""
    if "conversation_id" not in prefixes.columns:
        return pairs["prefix_id"].to_numpy()
    return pairs.join(prefixes.select("prefix_id", "conversation_id"), on="prefix_id", how="left")["conversation_id"].fill_null(
        pairs["prefix_id"]).to_numpy()


def scoring_rows(ledger: pl.DataFrame, observed: pl.DataFrame, changes: pl.DataFrame, cfg: StudyConfig,
                 challenging: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows for depsim's forecast of record (from the ledger: its prediction interval, the sampling-only
    interval apart) and the previous-production-rate and challenging-prompt baselines, every method on
    every observed (release, category)."""
    incumbents = {r.name: r.incumbent for r in cfg.releases}
    obs = observed.select("release", "category", observed_rate="rate_per_100k", observed_lo="lo_per_100k", observed_hi="hi_per_100k",
                          observed_floor="floor_per_100k")

    def col(name: str, fallback: str) -> pl.Expr:  # ledger entries written before the forecast of record existed
        return pl.col(name) if name in ledger.columns else pl.col(fallback)

    depsim = ledger.select(
        "release", "category", method=pl.lit("depsim"),
        predicted_direction=pl.col("direction").cast(pl.String) if "direction" in ledger.columns else pl.lit(None, pl.String),
        estimate=pl.col("forecast_estimate") if "forecast_estimate" in ledger.columns else pl.lit("raw (entry older than the forecast of record)"),
        forecast_rate=col("forecast_rate_per_100k", "rate_per_100k"), forecast_lo=col("pi_lo_per_100k", "cp_lo_per_100k"),
        forecast_hi=col("pi_hi_per_100k", "cp_hi_per_100k"), sampling_lo=col("forecast_lo_per_100k", "cp_lo_per_100k"),
        sampling_hi=col("forecast_hi_per_100k", "cp_hi_per_100k"), floor="detection_floor_per_100k",
    ) if len(ledger) and "category" in ledger.columns and "rate_per_100k" in ledger.columns else pl.DataFrame(schema={"release": pl.String})
    inc = pl.DataFrame({"release": list(incumbents), "incumbent": list(incumbents.values())}, schema={"release": pl.String, "incumbent": pl.String})
    previous = (
        inc.drop_nulls("incumbent")
        .join(obs.rename({"release": "incumbent"}), on="incumbent")
        .select("release", "category", method=pl.lit("previous_production_rate"), predicted_direction=pl.lit("no detectable change"),
                estimate=pl.lit("incumbent's observed rate"), forecast_rate="observed_rate", forecast_lo="observed_lo",
                forecast_hi="observed_hi", floor="observed_floor")
    )
    parts = [p for p in (depsim, previous, challenging) if p is not None and "method" in p.columns]
    rows = pl.concat(parts, how="diagonal_relaxed")
    grid = obs.join(changes, on=["release", "category"], how="left").select(
        "release", "category", "observed_rate", "observed_lo", "observed_hi", "observed_floor", "obs_ratio", "obs_ratio_lo", "obs_ratio_hi")
    full = complete(rows, grid)
    return full.with_columns(floor=pl.max_horizontal("floor", "observed_floor"))
