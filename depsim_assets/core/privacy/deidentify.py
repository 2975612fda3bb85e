"""De-identify consented conversations: plant canaries, scrub every message, gate, report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import polars as pl

from depsim_assets.core.config import PrivacyConfig, SourceConfig
from depsim_assets.core.consent import consent_mask
from depsim_assets.core.ingest import CONVERSATION_SCHEMA
from depsim_assets.core.privacy.gate import PrivacyGateError, canary_conversations, scan
from depsim_assets.core.privacy.rules import FILTER_VERSION, hmac_hex
from depsim_assets.core.privacy.scrub import study_scrubber

CANARY_SOURCE = "__canary__"


@dataclass
class Deidentified:
    conversations: pl.DataFrame
    entity_counts: pl.DataFrame  # source, rule, entity, count
    canaries: pl.DataFrame  # canary, entity, value_removed
    messages_scrubbed: int


def canary_strings(values: list[dict[str, str]]) -> list[str]:
    out = []
    for v in values:
        out += list(v.values()) + [v["PERSON"].split()[0]]
    return out


def _plant(conversations: pl.DataFrame, key: bytes, count: int) -> tuple[pl.DataFrame, list[dict[str, str]]]:
    rows = canary_conversations(key, count)
    if not rows:
        return conversations, []
    canaries = pl.DataFrame(
        [{"conversation_id": r["conversation_id"], "source": CANARY_SOURCE, "kind": "traffic", "consent": "canary",
          "multimodal": False, "messages": r["messages"]} for r in rows],
        schema={k: CONVERSATION_SCHEMA[k] for k in ("conversation_id", "source", "kind", "consent", "multimodal", "messages")},
    )
    return pl.concat([conversations, canaries], how="diagonal_relaxed"), [r["values"] for r in rows]  # type: ignore[misc]


def _letters(hex_digest: str, n: int = 24) -> str:
    """A keyed hash written in letters only: hex digits would form digit runs that the gate rightly reads
    as card or phone numbers."""
    return "".join(chr(ord("a") + int(hex_digest[2 * i : 2 * i + 2], 16) % 26) for i in range(n))


def conversation_hash(key: bytes, source_id: str) -> str:
    """The pseudonymous id of a traffic conversation (or pair) id."""
    return "c-" + _letters(hmac_hex(key, "conversation", source_id))


def user_hash(key: bytes, user: str) -> str:
    return hmac_hex(key, "user", user)[:24]


def pseudonymous_ids(conversations: pl.DataFrame, key: bytes) -> pl.DataFrame:
    """Traffic conversation ids (and pair ids) as keyed hashes: a source's own ids can carry a person (an
    e-mail as a session id). Eval-set ids stay the dataset's own: recorded completions join on them."""
    def hashed(column: str) -> pl.Series:
        values = conversations[column].to_list()
        kinds = conversations["kind"].to_list()
        return pl.Series(column, [v if v is None or k == "eval_set" else conversation_hash(key, v)
                                  for v, k in zip(values, kinds, strict=True)], dtype=pl.String)

    return pl.DataFrame([hashed("conversation_id"), hashed("pair_id")])


def user_map(users: pl.Series, key: bytes) -> dict[str, str]:
    """User ids become keyed hashes; one HMAC per distinct user, not per row."""
    return {u: user_hash(key, u) for u in users.drop_nulls().unique().to_list()}


def _mask(value: str) -> str:
    """What an error message may show of a leaked value: its kind and length, never the value."""
    return f"<{len(value)} chars>"


def deidentify(conversations: pl.DataFrame, sources: list[SourceConfig], cfg: PrivacyConfig, key: bytes) -> Deidentified:
    if not key:
        raise ValueError("the privacy HMAC key is empty: set DEPSIM_PRIVACY_KEY")
    planted, canary_vals = _plant(conversations, key, cfg.canaries.count if cfg.canaries.enabled else 0)
    scrubber = study_scrubber(key, cfg)
    msgs = (
        planted.select("conversation_id", "source", "messages")
        .with_row_index("conv_row")
        .explode("messages")
        .filter(pl.col("messages").is_not_null())
        .with_columns(pl.int_range(pl.len()).over("conv_row").alias("turn"))
        .unnest("messages")
    )
    content, counts = scrubber.scrub(msgs["content"], msgs["source"])
    tool_calls, tool_counts = scrubber.scrub(msgs["tool_calls"], msgs["source"])
    names, name_counts = scrubber.scrub(msgs["name"], msgs["source"])  # the `name` field is sent to the model too
    attributes, attr_counts = scrubber.scrub(planted["attributes"], planted["source"])
    msgs = msgs.with_columns(
        content=content,
        tool_calls=tool_calls,
        name=names,
        emptied_by_scrub=(msgs["content"].str.strip_chars().str.len_chars() > 0) & (content.fill_null("").str.strip_chars().str.len_chars() == 0),
    )
    ids = pseudonymous_ids(planted, key)
    findings = scan(pl.concat([msgs["content"], msgs["tool_calls"], msgs["name"], attributes, ids["conversation_id"]]),
                    canary_strings(canary_vals))
    if findings:
        kinds = Counter(f.kind for f in findings)
        examples = ", ".join(f"{f.kind} {_mask(f.value)}" for f in findings[:5])
        raise PrivacyGateError(
            f"privacy gate: {len(findings)} identifier(s) survived scrubbing ({dict(kinds)}; e.g. {examples}). "
            "Nothing was written. Check privacy.disabled_rules and the scrub rules for these entity types."
        )
    canary_report = pl.DataFrame(
        [{"canary": i, "entity": k, "value_removed": True} for i, v in enumerate(canary_vals) for k in v],
        schema={"canary": pl.Int64, "entity": pl.String, "value_removed": pl.Boolean},
    )
    rebuilt = (
        msgs.sort("conv_row", "turn")
        .group_by("conv_row", maintain_order=True)
        .agg(
            messages=pl.struct("role", "content", "tool_calls", "tool_call_id", "name"),
            emptied_by_scrub=pl.col("emptied_by_scrub").any(),
        )
    )
    out = (
        planted.with_row_index("conv_row")
        .drop("messages")
        .join(rebuilt, on="conv_row", how="left")
        .drop("conv_row")
        .with_columns(conversation_id=ids["conversation_id"], pair_id=ids["pair_id"], attributes=attributes)
        .filter(pl.col("source") != CANARY_SOURCE)
        .with_columns(
            user_id=pl.col("user_id").replace_strict(user_map(planted["user_id"], key), default=None, return_dtype=pl.String),
            consent_ok=consent_mask(planted, sources),
            privacy_filter=pl.lit(FILTER_VERSION),
        )
    )
    entity_counts = pl.concat([counts, tool_counts, name_counts, attr_counts]).group_by("group", "rule", "entity").agg(pl.col("count").sum())
    entity_counts = entity_counts.rename({"group": "source"}).sort("source", "entity", "rule")
    return Deidentified(out, entity_counts, canary_report, len(msgs))


@dataclass
class DeidentifyTally:
    """Totals over a streamed de-identification: replacements, canary results, messages scrubbed."""

    entity_counts: list[pl.DataFrame] = field(default_factory=list)
    canaries: pl.DataFrame | None = None
    messages_scrubbed: int = 0
    seconds: float = 0.0  # spent scrubbing and gating (the stage also parses and stores)

    def counts(self) -> pl.DataFrame:
        if not self.entity_counts:
            return pl.DataFrame(schema={"source": pl.String, "entity": pl.String, "rule": pl.String, "count": pl.Int64})
        return pl.concat(self.entity_counts).group_by("source", "entity", "rule").agg(pl.col("count").sum()).sort("source", "entity", "rule")


def deidentify_batches(batches: Iterable[pl.DataFrame], sources: list[SourceConfig], cfg: PrivacyConfig, key: bytes,
                       tally: DeidentifyTally) -> Iterator[pl.DataFrame]:
    """De-identify batch by batch, canaries planted and the gate run in every batch: a leak in any batch
    raises before that batch is yielded (the caller's spool is then discarded whole)."""
    for batch in batches:
        started = time.perf_counter()
        result = deidentify(batch, sources, cfg, key)
        tally.seconds += time.perf_counter() - started
        tally.entity_counts.append(result.entity_counts)
        tally.canaries = result.canaries
        tally.messages_scrubbed += result.messages_scrubbed
        yield result.conversations


DEIDENTIFIED_SCHEMA = pl.Schema({**CONVERSATION_SCHEMA, "emptied_by_scrub": pl.Boolean, "consent_ok": pl.Boolean, "privacy_filter": pl.String})
