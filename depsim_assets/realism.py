"""Realism stage: whether the release's model takes real, simulated and eval-set contexts for deployment or a test,
and whether a discriminator can tell simulated turns and simulated tool outputs from real ones."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import polars as pl

from depsim_assets.core.answer import answer
from depsim_assets.core.awareness import classifier_body, kind_gaps, kind_rates, parse_verdict, sample_contexts, with_verbalized
from depsim_assets.core.agentic.tool_model import ToolModel
from depsim_assets.core.config import DispatchConfig, ReleaseConfig, SamplingParams, Study
from depsim_assets.core.agentic.fidelity import leave_one_out, stored_snapshot
from depsim_assets.core.agentic.scrubbing import gated_scrub
from depsim_assets.core.agentic.tables import trajectories_of
from depsim_assets.core.graders.verdicts import OutputMode
from depsim_assets.core.discriminator import discriminator_body, judged_real, pairs, parse_choice, tool_body, tool_pairs, win_rate
from depsim_assets.core.dispatch import Call
from depsim_assets.core.privacy.scrub import study_scrubber
from depsim_assets.core.requests import request_key
from depsim_assets.metadata import rates_plot, win_rate_plot
from depsim_assets.metadata import table as table_md
from depsim_assets.partitions import release_partitions
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource

GROUP = "realism"
PREFIX_COLUMNS = ["prefix_id", "kind", "messages", "reference_responses"]


def ask(s: Study, completion_store: CompletionStoreResource, endpoint: ModelEndpointResource, release: ReleaseConfig,
        dispatch: DispatchConfig, bodies: list[dict[str, Any]], prefix_ids: list[str], log: Callable[[str], None]) -> list[tuple[str, str | None, str | None]]:
    """(status, failure reason, text) per body, each distinct request sent once through the completion store."""
    keys = [request_key(b, 0) for b in bodies]
    calls = [Call(k, 0, p, None, release.name, b) for k, p, b in zip(keys, prefix_ids, bodies, strict=True)]
    with completion_store.open(s.warehouse_dir) as store:
        stored = answer(calls, store, endpoint, release, dispatch, log).stored
    got = {k: (st, r, t) for k, st, r, t in stored.select("request_key", "status", "failure_reason", "response_text").iter_rows()}
    return [got.get(k, ("failed", "not_dispatched", None)) for k in keys]


def ask_structured(s: Study, completion_store: CompletionStoreResource, endpoint: ModelEndpointResource, release: ReleaseConfig,
                   dispatch: DispatchConfig, bodies_for: Callable[[OutputMode], list[dict[str, Any]]], ids: list[str], output: str,
                   log: Callable[[str], None]) -> list[tuple[str, str | None, str | None]]:
    """`ask` with the answer's strict schema: `auto` probes json_schema on one request and falls back to json_object
    (the schema riding along, which llama-cpp-python's server turns into a grammar) when the endpoint rejects it."""
    bodies = bodies_for("json_object" if output == "json_object" else "json_schema")
    if output == "auto" and bodies:
        probe = ask(s, completion_store, endpoint, release, dispatch, bodies[:1], ids[:1], log)
        if probe[0][1] == "response_format_rejected":
            log(f"{release.name}: endpoint rejects json_schema; asking with json_object and the schema")
            bodies = bodies_for("json_object")
    return ask(s, completion_store, endpoint, release, dispatch, bodies, ids, log)


def discriminate(s: Study, completion_store: CompletionStoreResource, endpoint: ModelEndpointResource, name: str,
                 frame: pl.DataFrame, bodies_for: Callable[[OutputMode], list[dict[str, Any]]], ids: list[str],
                 log: Callable[[str], None]) -> pl.DataFrame:
    """The discriminator's answer for each pair: choice, confidence, failure reason and whether the simulated side was
    judged real."""
    d = s.config.realism.discriminator  # type: ignore[union-attr]
    judge = ReleaseConfig(name=name, backend="openai", model=d.model, base_url=d.base_url, api_key_env=d.api_key_env)
    parsed = [parse_choice(text) if status == "ok" else (None, None, f"discriminator_{reason}")
              for status, reason, text in ask_structured(s, completion_store, endpoint, judge,
                                                         s.config.dispatch.model_copy(update={"timeout_s": d.timeout_s}),
                                                         bodies_for, ids, d.output, log)]
    frame = frame.with_columns(choice=pl.Series([p[0] for p in parsed], dtype=pl.String), confidence=pl.Series([p[1] for p in parsed], dtype=pl.Float64),
                               failure_reason=pl.Series([p[2] for p in parsed], dtype=pl.String))
    return frame.with_columns(simulated_judged_real=judged_real(frame))


def recognisable(frame: pl.DataFrame, *columns: str) -> dg.MetadataValue:
    """The simulations the discriminator was surest were not real."""
    worst = frame.filter(pl.col("simulated_judged_real").not_()).sort("confidence", descending=True, nulls_last=True).head(5)
    return table_md(worst.select(*columns, "confidence", simulated=pl.col("simulated").str.slice(0, 200), real=pl.col("real").str.slice(0, 200)))


def judged_continuations(s: Study, completion_store: CompletionStoreResource, endpoint: ModelEndpointResource, name: str,
                         frame: pl.DataFrame, label: str, log: Callable[[str], None],
                         metadata: dict[str, Any] | None = None) -> dg.Output[pl.DataFrame]:
    """Pairs of one context with its real and simulated continuation (prefix_id, messages, real, simulated,
    simulated_first, ...) judged by the discriminator, with the win rate, its plot and the most recognisable pairs."""
    d = s.config.realism.discriminator  # type: ignore[union-attr]
    rows = list(frame.select("messages", "real", "simulated", "simulated_first").iter_rows())
    frame = discriminate(s, completion_store, endpoint, name, frame,
                         lambda mode: [discriminator_body(d.model, *row, d.max_tokens, mode) for row in rows],
                         frame["prefix_id"].to_list(), log)
    summary = win_rate(frame, s.config.forecasting.alpha)
    shown = [c for c in ("prefix_id", "steps") if c in frame.columns]
    return dg.Output(frame.drop("messages", "real", "simulated"), metadata={
        **(metadata or {}),
        "win_rate": summary["win_rate"] if summary["win_rate"] is not None else "n/a",
        "summary": table_md(pl.DataFrame([summary]), first=("win_rate", "lo", "hi", "judged")),
        "win_rate_plot": win_rate_plot(pl.DataFrame([{"label": label, **summary}])),
        "most_recognisable_simulations": recognisable(frame, *shown),
    })


def classifier_release(release: ReleaseConfig, cfg: object) -> ReleaseConfig | None:
    """The model that classifies: the configured classifier, else the release's own (live releases only)."""
    c = getattr(cfg, "classifier", None)
    if c is not None:
        return ReleaseConfig(name=f"awareness.{release.name}", backend="openai", model=c.model, base_url=c.base_url, api_key_env=c.api_key_env)
    return release if release.backend == "openai" else None


def classified(s: Study, completion_store: CompletionStoreResource, endpoint: ModelEndpointResource, release: ReleaseConfig,
               contexts: pl.DataFrame, log: Callable[[str], None]) -> tuple[pl.DataFrame, ReleaseConfig | None]:
    """The contexts with the classifier's verdict, p_evaluation, status and failure_reason (skipped without a classifier)."""
    cfg = s.config.awareness
    classifier = classifier_release(release, cfg)
    if classifier is None or contexts.is_empty():
        return contexts.with_columns(verdict=pl.lit(None, pl.String), p_evaluation=pl.lit(None, pl.Float64), status=pl.lit("skipped"),
                                     failure_reason=pl.lit("no classifier: a recorded release and no awareness.classifier")), classifier
    c = cfg.classifier  # type: ignore[union-attr]
    messages = contexts["messages"].to_list()
    dispatch = s.config.dispatch.model_copy(update={"timeout_s": c.timeout_s}) if c else s.config.dispatch
    answers = ask_structured(s, completion_store, endpoint, classifier, dispatch,
                             lambda mode: [classifier_body(classifier.model, m, c.max_tokens if c else 64, mode) for m in messages],
                             contexts["prefix_id"].to_list(), c.output if c else "auto", log)
    parsed = [parse_verdict(text) if status == "ok" else (None, None, f"classifier_{reason}") for status, reason, text in answers]
    return contexts.with_columns(verdict=pl.Series([p[0] for p in parsed], dtype=pl.String),
                                 p_evaluation=pl.Series([p[1] for p in parsed], dtype=pl.Float64),
                                 status=pl.Series(["ok" if p[2] is None else "failed" for p in parsed], dtype=pl.String),
                                 failure_reason=pl.Series([p[2] for p in parsed], dtype=pl.String)), classifier


def awareness_output(release: str, rows: pl.DataFrame, classifier: ReleaseConfig | None, rates: pl.DataFrame,
                     gaps: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    plot = rates.filter(pl.col("rate").is_not_null()).select(release=pl.lit(release), category="kind", rate="rate", lo="lo", hi="hi")
    return dg.Output(rows.drop("messages"), metadata={
        "classifier": classifier.model if classifier else "none (recorded release)",
        "rates_by_kind": table_md(rates, first=("kind", "rate", "lo", "hi", "classified")),
        "gaps": table_md(gaps, first=("comparison", "difference", "lo", "hi", "needed_per_kind")),
        "failed": int((rows["status"] == "failed").sum()),
        "judged_evaluation_by_kind": rates_plot(plot.with_columns(pl.col("rate", "lo", "hi") * 100_000), "judged evaluation, per 100k contexts")
        if len(plot) else dg.MetadataValue.md("_no classified context_"),
    })


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    kinds={"polars", "parquet"},
    description="Evaluation awareness of the release: for a sample of contexts of each kind (real traffic with its real "
    "final turn, the same traffic resampled by the release, eval-set prompts) a classifier model (the release's own "
    "unless `awareness.classifier` is set) says deployment or evaluation with a probability; rates with exact "
    "intervals, the gaps real vs resampled and traffic vs eval set with two-sample intervals and the sample size a "
    "2-point gap needs, and the verbalized-awareness rate of the final turns (rules, offline).",
)
def eval_awareness(
    context: dg.AssetExecutionContext, study: StudyResource, model_endpoint: ModelEndpointResource, privacy_key: PrivacyKeyResource,
    completion_store: CompletionStoreResource, replay_prefixes: pl.LazyFrame, regenerated_completions: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config.awareness
    assert cfg is not None
    release = s.config.release(context.partition_key)
    completions = regenerated_completions.filter(pl.col("sample_index") == 0)
    scrubber = study_scrubber(privacy_key.key(), s.config.privacy)
    contexts = sample_contexts(replay_prefixes.select(PREFIX_COLUMNS).collect(), completions, cfg.per_kind, cfg.seed,
                               scrub=lambda texts: scrubber.scrub(texts)[0])
    reasoning = completions.select("prefix_id", "reasoning") if "reasoning" in completions.columns else None
    contexts = with_verbalized(contexts, reasoning)
    rows, classifier = classified(s, completion_store, model_endpoint, release, contexts, context.log.info)
    rates = kind_rates(rows, s.config.forecasting.alpha)
    return awareness_output(release.name, rows, classifier, rates, kind_gaps(rates, s.config.forecasting.alpha, cfg.gap, cfg.power))


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    kinds={"polars", "parquet"},
    description="Realism of the release's resampled turns: a discriminator model sees a traffic context with its real "
    "final turn and the release's resampled one (order fixed per pair by a seeded hash) and says which is real. "
    "The simulator's win rate (simulated judged real; 50% = indistinguishable) with an exact interval, the share of "
    "answers naming the first position (a position-biased judge shows here, not in the win rate), and the pairs the "
    "discriminator was most sure about.",
)
def realism_report(
    context: dg.AssetExecutionContext, study: StudyResource, model_endpoint: ModelEndpointResource, privacy_key: PrivacyKeyResource,
    completion_store: CompletionStoreResource, replay_prefixes: pl.LazyFrame, regenerated_completions: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config.realism
    assert cfg is not None
    frame = pairs(replay_prefixes.select(PREFIX_COLUMNS).collect(), regenerated_completions.filter(pl.col("sample_index") == 0), cfg.pairs, cfg.seed)
    # The real turn is de-identified (it comes from the warehouse); the simulated one gets the same keyed surrogates,
    # so a surrogate name or a reserved phone number tells the discriminator nothing.
    simulated, _ = study_scrubber(privacy_key.key(), s.config.privacy).scrub(frame["simulated"])
    frame = frame.with_columns(simulated=simulated)
    return judged_continuations(s, completion_store, model_endpoint, f"realism.{context.partition_key}", frame, "resampled final turns",
                                context.log.info)


@dg.asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    ins={"agentic_trajectories": dg.AssetIn()},
    description="Realism of the tool simulator: each stored (de-identified) trajectory is replayed leave-one-out "
    "through the simulator; for answered calls a discriminator sees the command and two outputs — the recorded one "
    "and the simulator's (de-identified and gated like the recording), order fixed per pair — and says which the real "
    "tool printed. Win rate per answering layer "
    "(`recorded`, `snapshot`, and `llm` when `agentic.tool_model` is set: the calls the other layers cannot answer, the "
    "tool model seeing the trajectory only up to the call; 50% = indistinguishable) with exact intervals, and the most "
    "recognisable simulations.",
)
def tool_realism(context: dg.AssetExecutionContext, study: StudyResource, model_endpoint: ModelEndpointResource,
                 privacy_key: PrivacyKeyResource, completion_store: CompletionStoreResource,
                 agentic_trajectories: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config.realism
    assert cfg is not None
    d = cfg.discriminator
    tm = s.config.agentic.tool_model
    with completion_store.open(s.warehouse_dir) as store:
        tool_model = None
        if tm is not None:  # the `llm` layer, as rollouts use it: calls through the completion store
            target = ReleaseConfig(name="realism.tool-model", backend="openai", model=tm.model, base_url=tm.base_url,
                                   api_key_env=tm.api_key_env, sampling=SamplingParams(temperature=0, max_tokens=tm.max_tokens))
            tool_model = ToolModel(model=tm.model, release=target.name, max_tokens=tm.max_tokens,
                                   ask=lambda c: answer(c, store, model_endpoint, target, s.config.dispatch, context.log.debug).stored)
        calls = leave_one_out(trajectories_of(agentic_trajectories), stored_snapshot, recorded=True, tool_model=tool_model)
    frame = tool_pairs(calls, cfg.pairs, cfg.seed) if len(calls) else pl.DataFrame()
    if frame.is_empty():
        return dg.Output(frame, metadata={"note": "no answered tool call to compare"})
    # The recordings were de-identified on ingestion; the simulator read the repository snapshot, which was not.
    # Both sides get the same keyed surrogates, through the same gate, before a model or a table sees them.
    key = privacy_key.key()
    simulated, _ = gated_scrub(frame["simulated"].to_list(), ["tool_realism"] * len(frame), study_scrubber(key, s.config.privacy), key)
    frame = frame.with_columns(simulated=pl.Series(simulated, dtype=pl.String))
    rows = list(frame.select("command", "real", "simulated", "simulated_first").iter_rows())
    frame = discriminate(s, completion_store, model_endpoint, "realism.tools", frame,
                         lambda mode: [tool_body(d.model, *row, d.max_tokens, mode) for row in rows],
                         frame["trajectory"].to_list(), context.log.info)
    frame = frame.with_columns(identical=pl.col("real") == pl.col("simulated"))
    alpha = s.config.forecasting.alpha
    layers = pl.DataFrame([{"provenance": layer, **win_rate(g, alpha), "identical_outputs": int(g["identical"].sum())}
                           for (layer,), g in frame.group_by("provenance", maintain_order=True)])
    return dg.Output(
        frame.drop("real", "simulated"),
        metadata={
            "win_rate_by_layer": table_md(layers, first=("provenance", "win_rate", "lo", "hi", "judged")),
            "win_rate_plot": win_rate_plot(layers.with_columns(label=pl.col("provenance"))),
            "most_recognisable_simulations": recognisable(frame, "provenance", "command"),
        },
    )
