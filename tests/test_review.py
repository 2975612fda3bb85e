"""The review loop: a flag-stratified sample with known inclusion probabilities, exported scrubbed, labelled
by people, imported back as the human grader that calibration compares the graders with."""

from pathlib import Path

import polars as pl

from depsim.cli import main
from depsim_assets.core.config import ReviewConfig, load_study
from depsim_assets.core.review import read_reviews, review_sample


def _labels(n: int, flagged_every: int) -> pl.DataFrame:
    return pl.DataFrame({
        "prefix_id": [f"p{i}" for i in range(n)], "sample_index": [0] * n, "category": ["refusal"] * n, "grader_id": ["rules"] * n,
        "human": [False] * n, "eligible": [True] * n, "status": ["ok"] * n, "flagged": [i % flagged_every == 0 for i in range(n)],
    })


def test_flag_stratified_sample_with_inclusion_probabilities() -> None:
    labels = _labels(1000, 33)  # 31 flagged, 969 not: a rare behaviour
    completions = pl.DataFrame({"prefix_id": labels["prefix_id"], "sample_index": [0] * 1000, "response_text": ["x"] * 1000})
    prefixes = pl.DataFrame({"prefix_id": labels["prefix_id"], "messages": [[{"role": "user", "content": "q"}]] * 1000})
    sample = review_sample(labels, completions, prefixes, "v1", ReviewConfig(per_stratum=50, seed=3))
    by = dict(sample.group_by("stratum").agg(pl.len()).iter_rows())
    assert by == {"flagged": 31, "not_flagged": 50}  # every flagged one (fewer than 50), 50 of the rest
    probs = dict(sample.group_by("stratum").agg(pl.col("inclusion_prob").first()).iter_rows())
    assert probs == {"flagged": 1.0, "not_flagged": 50 / 969}
    # Weighted back by 1/p, each stratum stands for its population: the traffic's own prevalence.
    assert sample.group_by("stratum").agg(w=(1 / pl.col("inclusion_prob")).sum()).sort("stratum")["w"].round(6).to_list() == [31, 969]
    again = review_sample(labels, completions, prefixes, "v1", ReviewConfig(per_stratum=50, seed=3))
    other = review_sample(labels, completions, prefixes, "v1", ReviewConfig(per_stratum=50, seed=4))
    assert again.equals(sample) and not other["prefix_id"].equals(sample["prefix_id"])


STUDY = """
study: rev
warehouse_dir: wh
sources: [{{name: ev, kind: eval_set, consent: public, paths: ["{prompts}"]}}]
releases:
  - {{name: v1, backend: recorded, model: m, recorded: {{path: "{completions}"}}}}
review: {{per_stratum: 5}}
graders:
  - {{id: rules, kind: rules, categories: [refusal]}}
{extra}
"""


def test_export_scrubbed_then_import_as_the_human_reference(tmp_path: Path, write_study, dagster_home: Path) -> None:
    prompts, completions = tmp_path / "prompts.csv", tmp_path / "completions.jsonl"
    prompts.write_text("id,prompt\n" + "".join(f"q{i},Question {i}?\n" for i in range(40)))
    completions.write_text("".join(
        f'{{"id": "q{i}", "completion": "{"I cannot help with that." if i % 4 == 0 else "Sure, write to jane.roe@fastmail.fm"}"}}\n'
        for i in range(40)))
    cfg = write_study(STUDY.format(prompts=prompts, completions=completions, extra=""))
    assert main(["run", "--all", "--config", str(cfg)]) == 0
    exported = load_study(cfg).warehouse_dir / "review" / "v1.csv"
    rows = pl.read_csv(exported)
    assert sorted(set(rows["stratum"])) == ["flagged", "not_flagged"] and len(rows) == 10
    assert "jane.roe@fastmail.fm" not in exported.read_text()  # the export is scrubbed
    # People label the file (here: refusals are refusals, but one person disagrees with the grader once).
    labelled = rows.with_columns(label=pl.col("grader_flagged").cast(pl.String), labeller=pl.lit("ann"))
    labelled = labelled.with_columns(label=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("no")).otherwise(pl.col("label")))
    labelled.write_csv(tmp_path / "reviewed_v1.csv")
    _, counts = read_reviews(tmp_path / "reviewed_v1.csv")
    assert counts == {"rows": 10, "labelled": 10, "unreadable_label": 0}
    extra = f'  - {{id: people, kind: review, path: "{tmp_path}/reviewed_{{release}}.csv"}}'
    cfg = write_study(STUDY.format(prompts=prompts, completions=completions, extra=extra), name="with_review.yaml")
    assert main(["run", "--all", "--config", str(cfg)]) == 0
    labels = load_study(cfg).warehouse.read("graded_labels", all_partitions=True)
    people = labels.filter(pl.col("grader_id") == "people")
    assert people.height == 10 and people["human"].all()
    # Calibration across releases uses only other releases: with one release, the review labels are there
    # for the next release's calibration; the confusion against the grader is computable from them now.
    from depsim_assets.core.graders.calibration import confusion

    table = confusion(labels).filter(pl.col("grader_id") == "rules")
    assert table.select("tp", "fn", "fp", "tn").sum_horizontal().item() == 10 and table["fp"].item() + table["fn"].item() == 1
