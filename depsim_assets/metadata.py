"""Helpers that turn frames into Dagster metadata (tables the UI renders)."""

import dagster as dg
import polars as pl

from depsim_assets.core.formatting import display_rows


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


def table(frame: pl.DataFrame, first: tuple[str, ...] = (), rows: int = 100) -> dg.MetadataValue:
    """A Dagster table (rendered as a table in the UI), decision columns first, numbers formatted for people
    by `core.formatting`; the full numeric table stays in the warehouse (`dagster/uri`)."""
    columns, values = display_rows(frame.head(rows), first)
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns])
    return dg.MetadataValue.table(records=[dg.TableRecord(dict(zip(columns, r, strict=True))) for r in values], schema=schema)


def _png(fig: object, title: str) -> dg.MetadataValue:
    """A matplotlib figure as an inline PNG the Dagster UI renders in markdown metadata."""
    import base64
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def rates_plot(table: pl.DataFrame, title: str) -> dg.MetadataValue:
    """Per-category rates per 100k with intervals, one marker per release, as an inline PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = table["category"].unique(maintain_order=True).to_list()
    releases = table["release"].unique(maintain_order=True).to_list()
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(1, len(cats))))
    for j, rel in enumerate(releases):
        sub = table.filter(pl.col("release") == rel)
        ys = [cats.index(c) + (j - (len(releases) - 1) / 2) * 0.25 for c in sub["category"]]
        rate, lo, hi = sub["rate"].to_numpy(), sub["lo"].to_numpy(), sub["hi"].to_numpy()
        ax.errorbar(rate, ys, xerr=[rate - lo, hi - rate], fmt="o", capsize=3, label=rel)
    ax.set_yticks(range(len(cats)), cats)
    ax.set_xlabel("rate per 100k messages (95% interval)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return _png(fig, title)


def scorecard_plot(rows: pl.DataFrame) -> dg.MetadataValue:
    """Forecast vs observed per 100k on log-log axes, with intervals, y = x and 1.5x bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if rows.is_empty():
        return dg.MetadataValue.md("_nothing to plot_")
    floor = rows["floor"].fill_null(1.0).to_numpy()
    obs = np.maximum(rows["observed_rate"].to_numpy(), floor)
    fc = np.maximum(rows["forecast_rate"].to_numpy(), floor)
    fig, ax = plt.subplots(figsize=(9, 7.5))
    ax.errorbar(obs, fc, yerr=[np.maximum(fc - np.maximum(rows["forecast_lo"].to_numpy(), floor / 2), 0),
                               np.maximum(rows["forecast_hi"].to_numpy() - fc, 0)],
                xerr=[np.maximum(obs - np.maximum(rows["observed_lo"].to_numpy(), floor / 2), 0),
                      np.maximum(rows["observed_hi"].to_numpy() - obs, 0)], fmt="o", alpha=0.7, capsize=2)
    lo, hi = min(obs.min(), fc.min()) / 2, max(obs.max(), fc.max()) * 2
    grid = np.array([lo, hi])
    ax.plot(grid, grid, "k-", lw=1, label="y = x")
    ax.plot(grid, grid * 1.5, "k--", lw=0.8, label="1.5x")
    ax.plot(grid, grid / 1.5, "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="observed rate per 100k messages", ylabel="forecast rate per 100k messages",
           xlim=(lo, hi), ylim=(lo, hi))
    # Every point says which forecast it is, so a miss can be traced to its release and category; labels
    # that would overlap are stacked below each other, with a leader line to their point.
    fig.canvas.draw()
    placed: list[tuple[float, float]] = []
    step, width = 10.0, 150.0  # one label's height and a typical width, in display pixels (fontsize 7 at 90 dpi)
    for x, y, release, category in sorted(zip(obs, fc, rows["release"], rows["category"], strict=True), key=lambda p: -p[1]):
        px, py = ax.transData.transform((x, y))
        ly = py
        while any(abs(px - qx) < width and abs(ly - qy) < step for qx, qy in placed):
            ly -= step
        placed.append((px, ly))
        ax.annotate(f"{release}/{category}", (x, y), xytext=(6, 3 + (ly - py) * 72 / fig.dpi), textcoords="offset points", fontsize=7,
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "alpha": 0.6} if ly != py else None)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig, "forecast vs observed")


def rollout_plot(evidence: pl.DataFrame, release: str, categories: int = 6) -> dg.MetadataValue:
    """Per category, the cumulative observed rate with its confidence sequence against the forecast's
    prediction-interval upper bound, look by look, as an inline PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    band = evidence.filter((pl.col("test") == "forecast_band") & pl.col("rate_per_100k").is_not_null()).sort("look")
    cats = band["category"].unique(maintain_order=True).to_list()[:categories]
    if not cats:
        return dg.MetadataValue.md("_no category with a forecast and observations yet_")
    fig, axes = plt.subplots(len(cats), 1, figsize=(6, 1.9 * len(cats)), squeeze=False, sharex=True)
    for ax, cat in zip(axes[:, 0], cats, strict=True):
        sub = band.filter(pl.col("category") == cat)
        looks = sub["look"].to_numpy()
        ax.fill_between(looks, sub["cs_lo_per_100k"].to_numpy(), sub["cs_hi_per_100k"].to_numpy(), alpha=0.25, label="observed (95% CS)")
        ax.plot(looks, sub["rate_per_100k"].to_numpy(), "o-", ms=3, label="observed rate")
        ax.plot(looks, sub["limit_per_100k"].to_numpy(), "r--", lw=1, label="forecast PI upper")
        ax.set_title(cat, fontsize=9)
        ax.set_ylabel("per 100k", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("look (batch)")
    return _png(fig, f"{release}: observed vs forecast band")


def cluster_plot(clusters: pl.DataFrame, release: str, incumbent: str | None, top: int = 12) -> dg.MetadataValue:
    """Distinct conversations per shown cluster, the release against its incumbent, as an inline PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = clusters.head(top)
    names = [f"{n[:48]}{' *' if c in ('appeared', 'grew') else ''}" for n, c in zip(rows["name"], rows["change"].fill_null(""), strict=True)]
    ys = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.42 * max(1, len(rows))))
    ax.barh(ys - 0.2, rows["candidate_conversations"].to_numpy(), height=0.4, label=release)
    if incumbent is not None:
        ax.barh(ys + 0.2, rows["incumbent_conversations"].fill_null(0).to_numpy(), height=0.4, label=incumbent)
    ax.set_yticks(ys, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("distinct conversations in the cluster")
    ax.set_title(f"{release}: discovered clusters (* appeared or grew)")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig, "cluster sizes")


def win_rate_plot(rows: pl.DataFrame) -> dg.MetadataValue:
    """The simulator's win rate per row (`label`, `win_rate`, `lo`, `hi`) with its interval and the 50% line
    (indistinguishable), as an inline PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = rows.filter(pl.col("win_rate").is_not_null())
    if rows.is_empty():
        return dg.MetadataValue.md("_no judged pair_")
    ys = np.arange(len(rows))
    rate, lo, hi = (rows[c].to_numpy() * 100 for c in ("win_rate", "lo", "hi"))
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.45 * len(rows)))
    ax.errorbar(rate, ys, xerr=[rate - lo, hi - rate], fmt="o", capsize=3)
    ax.axvline(50, color="k", ls="--", lw=1, label="50%: indistinguishable")
    ax.set_yticks(ys, [f"{label} (n={n})" for label, n in zip(rows["label"], rows["judged"], strict=True)], fontsize=8)
    ax.set(xlim=(0, 100), xlabel="simulated judged real, % (95% exact interval)", title="simulator win rate")
    ax.legend(fontsize=8, loc="best")
    return _png(fig, "simulator win rate")
