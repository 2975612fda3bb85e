"""Replay prefixes: each conversation cut just before an assistant turn, with the original response kept.

An hh-rlhf pair yields one prefix with both recorded responses. Eval-set records are prefixes as they
are. Prefix ids are stable (conversation or dataset id plus the turn index) and every prefix carries
the snapshot id of the set it belongs to, so later stages can prove two releases saw the same prefixes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import polars as pl

from depsim_assets.core.config import PrefixConfig
from depsim_assets.core.power import design_effect, sample_size

LENGTH_BUCKETS = [500, 2000, 8000]


def _turn_frame(conversations: pl.DataFrame) -> pl.DataFrame:
    return (
        conversations.with_row_index("conv_row")
        .explode("messages")
        .with_columns(turn=pl.int_range(pl.len()).over("conv_row"), role=pl.col("messages").struct.field("role"))
    )


def build_prefixes(conversations: pl.DataFrame, mode: str = "final_turn") -> pl.DataFrame:
    keep = ["conversation_id", "pair_id", "pair_role", "source", "kind", "language", "attributes", "messages"]
    conv = conversations.select(keep).with_columns(unit_id=pl.coalesce("pair_id", "conversation_id"))
    evals = conv.filter(pl.col("kind") == "eval_set").with_columns(
        turn=pl.col("messages").list.len().cast(pl.Int64), response=pl.lit(None, pl.String)
    )
    traffic = conv.filter(pl.col("kind") != "eval_set")
    turns = _turn_frame(traffic).filter(pl.col("role") == "assistant")
    if mode == "final_turn":
        turns = turns.filter(pl.col("turn") == pl.col("turn").max().over("conv_row"))
    cuts = turns.select(
        "conv_row", pl.col("turn").cast(pl.Int64), response=pl.col("messages").struct.field("content")
    )
    traffic = traffic.with_row_index("conv_row").join(cuts, on="conv_row").drop("conv_row")
    traffic = traffic.with_columns(messages=pl.col("messages").list.head(pl.col("turn")))
    both = pl.concat([traffic, evals.select(traffic.columns)])
    refs = (
        both.group_by("unit_id", "turn", maintain_order=True)
        .agg(
            pl.col("conversation_id", "source", "kind", "language", "attributes", "messages").first(),
            pl.col("pair_id").first(),
            reference_responses=pl.struct(variant=pl.coalesce("pair_role", pl.lit("original")), content="response").filter(pl.col("response").is_not_null()),
        )
    )
    return refs.select(
        prefix_id=pl.col("unit_id") + "#" + pl.col("turn").cast(pl.String),
        conversation_id=pl.col("unit_id"),
        turn_index=pl.col("turn"),
        source="source",
        kind="kind",
        language="language",
        attributes="attributes",
        messages="messages",
        reference_responses="reference_responses",
        n_turns=pl.col("messages").list.len(),
        prefix_chars=pl.col("messages").list.eval(pl.element().struct.field("content").str.len_chars()).list.sum(),
    ).with_columns(length_bucket=pl.col("prefix_chars").cut(LENGTH_BUCKETS, labels=["short", "medium", "long", "very_long"]).cast(pl.String))


def sha256_hex(values: pl.Series) -> pl.Series:
    """SHA-256 of each string: stable across library versions, unlike polars' `hash()`."""
    return pl.Series(values.name, [hashlib.sha256(v.encode()).hexdigest() for v in values.fill_null("").to_list()], dtype=pl.String)


def shard_of(prefix_ids: pl.Series, shards: int) -> pl.Series:
    """The shard (0 .. shards-1) of each prefix, from a SHA-256 of its id: the same prefix lands in the same
    shard for every release of the study (a release and its incumbent are split alike) and in every run."""
    digits = sha256_hex(prefix_ids).str.slice(0, 15).str.to_integer(base=16)
    return (digits % shards).cast(pl.Int64).alias("shard")


def _strata_key(frame: pl.DataFrame, strata: list[str]) -> pl.Expr:
    cols = {"turn_count": pl.col("n_turns").clip(upper_bound=10).cast(pl.String), "language": pl.col("language").fill_null("unknown")}
    return pl.concat_str([cols.get(s, pl.col(s).cast(pl.String)) for s in strata], separator="|") if strata else pl.lit("all")


def sample_prefixes(prefixes: pl.DataFrame, cfg: PrefixConfig) -> tuple[pl.DataFrame, dict[str, object]]:
    """Sample per the config and record each prefix's weight (population size / sample size, by stratum).

    Returns the sample and a description of how its size was chosen.
    """
    s = cfg.sampling
    info: dict[str, object] = {"method": s.method, "population": len(prefixes)}
    target_n = s.size
    if s.target is not None:
        needed = sample_size(s.target)
        info["target"] = s.target.model_dump()
        info["needed_for_target"] = needed
        info["design_effect"] = design_effect(s.target.prefixes_per_conversation, s.target.icc, s.target.weight_cv)
        target_n = needed if target_n is None else min(target_n, needed)
    if s.method == "all" or target_n is None or target_n >= len(prefixes):
        info["sampled"] = len(prefixes)
        info["target_met"] = target_n is None or len(prefixes) >= target_n
        return prefixes.with_columns(weight=pl.lit(1.0), stratum=pl.lit("all")), info
    strata = s.strata if s.method == "stratified" else []
    keyed = prefixes.with_columns(stratum=_strata_key(prefixes, strata))
    sizes = keyed.group_by("stratum").agg(N=pl.len()).with_columns(
        n=(pl.col("N") * target_n / len(prefixes)).round().clip(lower_bound=1).cast(pl.Int64)
    )
    draw = sha256_hex(keyed.select(pl.concat_str(pl.lit(f"{s.seed}\x1f"), "prefix_id")).to_series())
    ranked = keyed.with_columns(draw=draw).join(sizes, on="stratum").with_columns(
        r=pl.col("draw").rank("ordinal").over("stratum")
    ).drop("draw")
    sample = ranked.filter(pl.col("r") <= pl.col("n")).with_columns(weight=pl.col("N") / pl.col("n")).drop("N", "n", "r")
    info["sampled"] = len(sample)
    info["target_met"] = True
    return sample, info


def content_sha256(prefixes: pl.DataFrame) -> pl.Series:
    """A content id per prefix: SHA-256 of its messages' text."""
    texts = prefixes.select(pl.col("messages").list.eval(pl.element().struct.field("content").fill_null("")).list.join("\x1f"))
    return sha256_hex(texts.to_series()).alias("content_sha256")


def snapshot_of(prefix_ids: pl.Series, content_ids: pl.Series) -> str:
    """Content id of a prefix set from each prefix's id and content id (order does not matter)."""
    digest = hashlib.sha256()
    rows = pl.DataFrame({"p": prefix_ids, "h": content_ids}).sort("p")
    for pid, h in rows.iter_rows():
        digest.update(f"{pid}\x1e{h}\n".encode())
    return "snap-" + digest.hexdigest()[:16]


def snapshot_id(prefixes: pl.DataFrame) -> str:
    """Content id of a prefix set: the same prefixes (ids and texts) give the same snapshot id."""
    return snapshot_of(prefixes["prefix_id"], content_sha256(prefixes))


def prefix_batches(conversations: Iterable[pl.DataFrame], mode: str) -> Iterator[pl.DataFrame]:
    """Prefixes batch by batch (batches must keep an hh-rlhf pair's two sides together), each with its
    content id, so a sample and its snapshot id can be chosen from a thin frame afterwards."""
    for batch in conversations:
        prefixes = build_prefixes(batch, mode)
        yield prefixes.with_columns(content_sha256=content_sha256(prefixes))


PREFIX_SCHEMA = pl.Schema({
    "prefix_id": pl.String, "conversation_id": pl.String, "turn_index": pl.Int64, "source": pl.String, "kind": pl.String,
    "language": pl.String, "attributes": pl.String, "messages": pl.List(pl.Struct({
        "role": pl.String, "content": pl.String, "tool_calls": pl.String, "tool_call_id": pl.String, "name": pl.String})),
    "reference_responses": pl.List(pl.Struct({"variant": pl.String, "content": pl.String})), "n_turns": pl.UInt32,
    "prefix_chars": pl.UInt32, "length_bucket": pl.String, "content_sha256": pl.String,
})
# What forecasting, observation and scoring read of a prefix (never its text).
THIN_PREFIX_COLUMNS = ["prefix_id", "conversation_id", "source", "attributes", "weight", "stratum", "snapshot_id"]


def real_response(references: list[dict[str, str]] | None) -> str | None:
    """The prefix's recorded final turn: the `original` variant, else the first (an hh-rlhf pair's side)."""
    refs = references or []
    real = next((r for r in refs if r.get("variant") == "original"), refs[0] if refs else None)
    return real.get("content") if real else None
