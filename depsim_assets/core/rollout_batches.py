"""Post-release observation batches: one file per time window in a watched directory.

A batch file holds counts (`category`, `flagged`, `n`), labelled messages (`category`, `flagged`), or the
ids of observed messages (`prefix_id`) whose labels come from the study's grader. A `release` column, when
present, keeps a release's rows. Windows are ordered by file name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

SUFFIXES = (".csv", ".parquet")
COUNTS_SCHEMA = pl.Schema({"category": pl.String, "n": pl.Int64, "flagged": pl.Int64})


class BatchError(ValueError):
    """A batch file depsim cannot read; the message names the file and what is wrong."""


def window_files(directory: Path) -> dict[str, Path]:
    """Window name (file stem) -> file, in window order."""
    if not directory.is_dir():
        return {}
    files = [p for p in directory.iterdir() if p.suffix in SUFFIXES and not p.name.startswith(".")]
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        raise BatchError(f"{directory}: two files for one window: {sorted(s for s in stems if stems.count(s) > 1)}")
    return {p.stem: p for p in sorted(files, key=lambda p: p.stem)}


def _read(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema_length=10_000)
    except Exception as e:  # noqa: BLE001 - polars raises several kinds; the user needs the file and the reason
        raise BatchError(f"{path}: not a readable batch file ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def window_counts(path: Path, release: str, labels: pl.DataFrame | None) -> pl.DataFrame:
    """(category, n, flagged) of one window for one release. `labels`: the grader's labels of the release
    (prefix_id, category, flagged, eligible, status), needed only for `prefix_id` batches."""
    frame = _read(path)
    if "release" in frame.columns:
        frame = frame.filter(pl.col("release").cast(pl.String) == release)
    cols = set(frame.columns)
    if {"category", "flagged", "n"} <= cols:
        counts = frame.group_by("category").agg(pl.col("n").sum(), pl.col("flagged").sum())
    elif {"category", "flagged"} <= cols:
        counts = frame.group_by("category").agg(n=pl.len(), flagged=pl.col("flagged").cast(pl.Boolean).sum())
    elif "prefix_id" in cols:
        if labels is None or labels.is_empty():
            raise BatchError(f"{path}: a batch of message ids needs the release's labels from the batch grader: "
                             f"materialize graded_labels for '{release}' first")
        ids = frame["prefix_id"].cast(pl.String).unique()
        ok = labels.filter(pl.col("prefix_id").is_in(ids) & pl.col("eligible") & (pl.col("status") == "ok"))
        unknown = ids.filter(~ids.is_in(labels["prefix_id"]))
        if len(unknown):
            raise BatchError(f"{path}: {len(unknown)} message id(s) have no label for '{release}' (first: {unknown[0]})")
        counts = ok.group_by("category").agg(n=pl.len(), flagged=pl.col("flagged").sum())
    else:
        raise BatchError(f"{path}: a batch needs columns (category, flagged, n), (category, flagged) or prefix_id; got {sorted(cols)}")
    bad = counts.filter((pl.col("flagged") > pl.col("n")) | (pl.col("flagged") < 0))
    if len(bad):
        raise BatchError(f"{path}: flagged exceeds n (or is negative) for {bad['category'].to_list()}")
    return counts.cast(dict(COUNTS_SCHEMA)).sort("category")


def replay_windows(prefix_ids: list[str], count: int, directory: Path) -> list[Path]:
    """Offline rollout: the observed prefixes in `count` windows (a fixed pseudo-random order, so every
    window is a sample of the same traffic), written as `batch-01.csv`... Existing files are kept."""
    order = sorted(prefix_ids, key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        path = directory / f"batch-{i + 1:02d}.csv"
        if not path.exists():
            pl.DataFrame({"prefix_id": order[i::count]}, schema={"prefix_id": pl.String}).write_csv(path)
        written.append(path)
    return written
