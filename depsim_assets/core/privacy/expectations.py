"""Great Expectations (1.x) suites on the de-identified output, run on an ephemeral context.

great_expectations is imported lazily: it costs seconds per process and only the checks need it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

import pandas as pd

# Residual identifiers, written with lookarounds (GE's pandas engine uses Python's `re`) so that the
# reserved-range surrogates are allowed and everything else fails.
RESIDUAL_PATTERNS = {
    "email": r"[\w.+-]+@(?!example\.(?:com|net|org)\b)[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}",
    "us_ssn": r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])",
    "ipv4": r"(?<![\w.])(?!(?:192\.0\.2|198\.51\.100|203\.0\.113)\.)(?!\d\.\d\.\d\.\d(?![\w.]))(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.])",
    "aws_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "api_key": r"\bsk-[A-Za-z0-9_-]{20,}",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{36,}",
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
}


@dataclass
class ExpectationOutcome:
    name: str
    success: bool
    unexpected_count: int


def run_suite(frames: pd.DataFrame | Iterable[pd.DataFrame], expectations: list[tuple[str, Any]]) -> list[ExpectationOutcome]:
    """Validate one frame, or a table batch by batch (one context, one batch definition; outcomes summed),
    so a large table is checked in bounded memory."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    definition = ctx.data_sources.add_pandas("depsim").add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")
    success = {name: True for name, _ in expectations}
    unexpected = {name: 0 for name, _ in expectations}
    for frame in [frames] if isinstance(frames, pd.DataFrame) else frames:
        batch = definition.get_batch(batch_parameters={"dataframe": frame})
        for name, expectation in expectations:
            res = batch.validate(expectation)
            success[name] &= bool(res.success)
            unexpected[name] += int(res.result.get("unexpected_count") or 0)
    return [ExpectationOutcome(name, success[name], unexpected[name]) for name, _ in expectations]


def deidentified_expectations(canaries: list[str]) -> list[tuple[str, Any]]:
    import great_expectations as gx

    e = gx.expectations
    checks: list[tuple[str, Any]] = [
        ("no_residual_identifiers", e.ExpectColumnValuesToNotMatchRegexList(column="content", regex_list=list(RESIDUAL_PATTERNS.values()))),
        ("only_consented_rows", e.ExpectColumnValuesToBeInSet(column="consent_ok", value_set=[True])),
        ("no_message_emptied_by_scrubbing", e.ExpectColumnValuesToBeInSet(column="emptied_by_scrub", value_set=[False])),
        ("no_canary_rows", e.ExpectColumnValuesToNotBeInSet(column="source", value_set=["__canary__"])),
    ]
    if canaries:
        checks.append(("canary_values_removed", e.ExpectColumnValuesToNotMatchRegexList(column="content", regex_list=[re.escape(c) for c in canaries])))
    return checks
