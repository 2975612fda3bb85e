"""The LLM judge against the fake OpenAI-compatible server over loopback HTTP: structured outputs and
their negotiation, bounded calls, hotter re-samples, one call per completion, identical requests,
request-level categories once per prefix, reasoning, and progress lines."""

from pathlib import Path

import polars as pl
import pytest

from depsim_assets.core.config import DispatchConfig, GraderConfig
from depsim_assets.core.graders.judge import JudgeGrader
from depsim_assets.core.graders.taxonomy import load_taxonomy
from depsim_resources.completion_store import Store
from depsim_resources.model_endpoint import ModelEndpointResource
from tests.fake_openai import FakeBehaviour, FakeOpenAI

TAX = load_taxonomy({})
CATS = [TAX.get(c) for c in ("violent_illicit", "self_harm", "harassment_hate", "misrepresented_work")]


def _items(texts: list[str], prefixes: list[str] | None = None, samples: list[int] | None = None,
           reasoning: list[str | None] | None = None) -> pl.DataFrame:
    n = len(texts)
    prefixes = prefixes or [f"p{i}#1" for i in range(n)]
    return pl.DataFrame({
        "prefix_id": prefixes, "sample_index": samples or [0] * n, "conversation_id": [p.split("#")[0] for p in prefixes],
        "attributes": [None] * n, "response_text": texts, "reasoning": reasoning or [None] * n, "tool_calls": [None] * n,
        "messages": [[{"role": "user", "content": f"question about {p}", "tool_calls": None, "tool_call_id": None, "name": None}]
                     for p in prefixes],
    })


@pytest.fixture
def server():
    srv = FakeOpenAI().start()
    yield srv
    srv.stop()


def _judge(server: FakeOpenAI, store: Store, log: list[str] | None = None, **cfg: object) -> JudgeGrader:
    config = GraderConfig(id="judge", kind="llm_judge", model="judge-model", base_url=server.base_url, **cfg)  # type: ignore[arg-type]
    return JudgeGrader(config, DispatchConfig(concurrency=4, progress_every_s=0.05), store, ModelEndpointResource(),
                       (log.append if log is not None else lambda _: None))


def test_one_structured_call_per_completion_with_strict_schema(server: FakeOpenAI, tmp_path: Path) -> None:
    texts = [f"answer {i}" + (" UNSAFE" if i % 4 == 0 else "") for i in range(12)]
    log: list[str] = []
    with Store(tmp_path / "s") as store:
        labels = _judge(server, store, log).grade(_items(texts), CATS, "rel")
    assert len(server.judge_bodies) == 12  # one call per completion for four categories (probe calls included)
    body = server.judge_bodies[0]
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    schema = rf["json_schema"]["schema"]
    assert schema["required"] == [c.id for c in CATS] and schema["additionalProperties"] is False
    inner = schema["properties"]["self_harm"]
    assert inner["required"] == ["flagged", "severity", "rationale"] and inner["additionalProperties"] is False
    assert all(b["max_tokens"] > 0 for b in server.judge_bodies)
    assert labels.height == 12 * 4 and (labels["status"] == "ok").all()
    assert set(labels["grader_mode"]) == {"multi/json_schema"}
    flagged = dict(labels.filter(pl.col("category") == "self_harm").select("prefix_id", "flagged").iter_rows())
    assert flagged == {f"p{i}#1": i % 4 == 0 for i in range(12)}
    assert any("structured output mode json_schema" in line for line in log)
    assert any("calls," in line and "ETA" in line for line in log)  # progress lines while judges run


def test_json_schema_rejected_falls_back_and_is_recorded(server: FakeOpenAI, tmp_path: Path) -> None:
    server.behaviour = FakeBehaviour(reject_json_schema=True)
    with Store(tmp_path / "s") as store:
        judge = _judge(server, store)
        labels = judge.grade(_items(["fine", "UNSAFE"]), CATS[:2], "rel")
    assert (labels["status"] == "ok").all() and set(labels["grader_mode"]) == {"multi/json_object"}
    used = [b["response_format"]["type"] for b in server.judge_bodies]
    switch = used.index("json_object")
    assert used[:switch] == ["json_schema"] * 2 and set(used[switch:]) == {"json_object"}  # two probes, then the fallback
    assert "schema" in server.judge_bodies[-1]["response_format"]  # llama-cpp-python's grammar from the schema
    assert labels["grader_version"].unique().item() == judge.version(CATS[:2], "json_object")


def test_malformed_greedy_answers_are_resampled_hotter(server: FakeOpenAI, tmp_path: Path) -> None:
    server.behaviour = FakeBehaviour(judge_malformed_first=1.0)  # every temperature-0 answer is prose
    with Store(tmp_path / "s") as store:
        labels = _judge(server, store, output="json_schema").grade(_items(["a", "b UNSAFE", "c"]), CATS[:1], "rel")
    assert (labels["status"] == "ok").all() and labels["flagged"].to_list() == [False, True, False]
    resampled = [b for b in server.judge_bodies if b["temperature"] > 0]
    assert len(resampled) == 3 and all(b["temperature"] == 0.8 and b["seed"] == 1 for b in resampled)


def test_a_category_missing_from_the_answer_fails_alone(server: FakeOpenAI, tmp_path: Path) -> None:
    server.behaviour = FakeBehaviour(judge_drop_category="harassment_hate")
    with Store(tmp_path / "s") as store:
        labels = _judge(server, store).grade(_items(["x", "y"]), CATS, "rel")
    missing = labels.filter(pl.col("category") == "harassment_hate")
    assert set(missing["failure_reason"]) == {"judge_missing_category"} and missing["flagged"].is_null().all()
    assert (labels.filter(pl.col("category") != "harassment_hate")["status"] == "ok").all()


def test_identical_requests_are_one_call_and_label_every_item(server: FakeOpenAI, tmp_path: Path) -> None:
    # Two samples of one prefix at temperature 0 gave the same completion: one judge request.
    items = _items(["same answer", "same answer", "other"], prefixes=["p0#1", "p0#1", "p1#1"], samples=[0, 1, 0])
    with Store(tmp_path / "s") as store:
        labels = _judge(server, store, output="json_schema").grade(items, CATS[:2], "rel")
    assert len(server.judge_bodies) == 2
    assert labels.height == 3 * 2 and (labels["status"] == "ok").all()
    assert sorted(labels.filter(pl.col("prefix_id") == "p0#1")["sample_index"].unique().to_list()) == [0, 1]


def test_request_level_categories_are_judged_once_per_prefix(server: FakeOpenAI, tmp_path: Path) -> None:
    cats = [TAX.get("unsafe_request"), TAX.get("self_harm")]
    with Store(tmp_path / "s") as store:
        judge = _judge(server, store, output="json_schema")
        judge.grade(_items(["release one says a", "release one says b"]), cats, "v1")
        first = len(server.judge_bodies)
        judge.grade(_items(["release two says a", "release two says b"]), cats, "v2")
    requests = [b for b in server.judge_bodies if "BEGIN REQUEST" in b["messages"][1]["content"]]
    assert first == 4 and len(requests) == 2  # the second release re-used the request-level verdicts
    assert len(server.judge_bodies) == 6


def test_reasoning_is_judged_where_the_category_asks_for_it(server: FakeOpenAI, tmp_path: Path) -> None:
    items = _items(["I ran the tests and they pass."], reasoning=["I did not actually run anything."])
    with Store(tmp_path / "s") as store:
        _judge(server, store, output="json_schema", single_categories=["self_harm"]).grade(
            items, [TAX.get("misrepresented_work"), TAX.get("self_harm")], "rel")
    by_cats = {b["messages"][1]["content"].split("\n", 1)[0]: b["messages"][1]["content"] for b in server.judge_bodies}
    assert "BEGIN REASONING\nI did not actually run anything." in by_cats["CATEGORIES: misrepresented_work"]
    assert "BEGIN REASONING" not in by_cats["CATEGORIES: self_harm"]  # judged on what it said only


def test_a_calibration_in_one_judge_mode_is_not_applied_to_another() -> None:
    from depsim_assets.core.forecast_config import ForecastConfig
    from depsim_assets.core.forecast import rate_forecasts
    from depsim_assets.core.graders.calibration import calibrate

    def labels(release: str, mode: str, human: bool, flags: list[bool]) -> list[dict]:
        return [{"release": release, "prefix_id": f"p{i}", "sample_index": 0, "category": "self_harm", "grader_id": "human" if human else "judge",
                 "grader_mode": None if human else mode, "human": human, "flagged": f, "eligible": True, "status": "ok",
                 "grader_version": "v"} for i, f in enumerate(flags)]

    flags = [i % 3 == 0 for i in range(90)]
    history = pl.DataFrame(labels("old", "multi/json_schema", False, flags) + labels("old", "", True, flags))
    cal = calibrate(history, exclude_release="new")
    assert cal["grader_mode"].to_list() == ["multi/json_schema"]
    prefixes = pl.DataFrame({"prefix_id": [f"p{i}" for i in range(90)], "conversation_id": [f"c{i}" for i in range(90)],
                             "weight": [1.0] * 90, "snapshot_id": ["s"] * 90})
    same = rate_forecasts(pl.DataFrame(labels("new", "multi/json_schema", False, flags)), prefixes, cal, ForecastConfig())
    other = rate_forecasts(pl.DataFrame(labels("new", "single/prompt", False, flags)), prefixes, cal, ForecastConfig())
    assert same["corrected_rate_per_100k"].item() is not None
    assert other["corrected_rate_per_100k"].item() is None
    assert other["correction_refused"].item() == "no calibration for this grader and category"
