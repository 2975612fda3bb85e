"""The rules refusal detector against XSTest's human labels, next to XSTest's own automated labels.

The detector's phrases were written and adjusted looking only at two models' completions (TUNING
below); this prints its agreement with the human final labels on the other three models, alongside
XSTest's shipped string-match labels and GPT-4 labels on the very same completions. Partial refusal
counts as refusal everywhere. Needs ../shared/data/labels/xstest (the string-match labels are not
shipped in the demo).
"""

import sys
from pathlib import Path

import numpy as np
import polars as pl
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from depsim_assets.core.graders.detectors import refusal  # noqa: E402

XSTEST = REPO.parent / "shared/data/labels/xstest"
PYRIT = REPO.parent / "shared/data/labels/pyrit-scorer-evals/refusal_scorer"
TUNING = ("llama2orig", "mistralguard")
HELD_OUT = ("gpt4", "llama2new", "mistralinstruct")
REFUSED = ("2_full_refusal", "3_partial_refusal")


def agreement(pred: pl.Series, truth: pl.Series) -> dict[str, object]:
    """Unparseable labels (GPT-4 sometimes answered free text) are dropped and counted."""
    ok = pred.is_not_null()
    p, t = pred.filter(ok), truth.filter(ok)
    tp, fn = int((p & t).sum()), int((~p & t).sum())
    fp, tn = int((p & ~t).sum()), int((~p & ~t).sum())
    s_lo, s_hi = proportion_confint(tp, tp + fn, method="beta")
    c_lo, c_hi = proportion_confint(tn, tn + fp, method="beta")
    return {"n": tp + fn + fp + tn, "dropped": int((~ok).sum()),
            "sensitivity": f"{tp / (tp + fn):.3f} [{s_lo:.3f}, {s_hi:.3f}]", "specificity": f"{tn / (tn + fp):.3f} [{c_lo:.3f}, {c_hi:.3f}]",
            "kappa": round(float(cohens_kappa(np.array([[tp, fn], [fp, tn]])).kappa), 3)}


def as_refusal(labels: pl.Series) -> pl.Series:
    return pl.select(pl.when(labels.is_in(REFUSED)).then(True).when(labels == "1_full_compliance").then(False).otherwise(None)).to_series()


def main() -> None:
    if not XSTEST.exists():
        print(f"{XSTEST} is absent: nothing to measure")
        return
    rows = []
    for split, models in (("tuning", TUNING), ("held-out", HELD_OUT)):
        for model in models:
            auto = XSTEST / "automated_evaluation_labels"
            base = pl.read_csv(XSTEST / f"model_completions/xstest_v2_completions_{model}.csv", infer_schema=False)
            gpt = pl.read_csv(auto / f"xstest_v2_completions_{model}_gpteval.csv", infer_schema=False).select("id", "gpt4_label")
            sm = pl.read_csv(auto / f"xstest_v2_completions_{model}_streval.csv", infer_schema=False).select("id", "strmatch_label")
            frame = base.join(gpt, on="id", how="left").join(sm, on="id", how="left")
            truth = frame["final_label"].is_in(REFUSED)
            for name, pred in (("depsim rules", refusal(frame["completion"])["refused"]),
                               ("XSTest string match", as_refusal(frame["strmatch_label"])),
                               ("XSTest GPT-4", as_refusal(frame["gpt4_label"]))):
                rows.append({"split": split, "model": model, "grader": name, **agreement(pred, truth)})
    # PyRIT's human-scored refusal sets (human_score 1 = refusal): never looked at while writing the rules.
    for name in ("refusal.csv", "refusal_extra.csv"):
        path = PYRIT / name
        if path.exists():
            frame = pl.read_csv(path, comment_prefix="#", infer_schema=False)
            rows.append({"split": "held-out", "model": f"pyrit/{name}", "grader": "depsim rules",
                         **agreement(refusal(frame["assistant_response"])["refused"], frame["human_score"] == "1")})
    with pl.Config(tbl_rows=40, tbl_cols=10, tbl_width_chars=160, fmt_str_lengths=40):
        print(f"refusal (full or partial) vs human labels; detector tuned on XSTest {', '.join(TUNING)} only")
        print(pl.DataFrame(rows))


if __name__ == "__main__":
    main()
