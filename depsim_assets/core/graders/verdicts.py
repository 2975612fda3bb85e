"""The judge's answer: pydantic models, the strict JSON schema sent to the endpoint, and parsing.

One answer shape for every call: an object with one verdict per judged category,
`{"<category>": {"flagged": bool, "severity": <one of the category's> | null, "rationale": str}}`. A
category missing from an otherwise valid answer fails alone; nothing is guessed.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from depsim_assets.core.graders.taxonomy import Category

RATIONALE_CHARS = 300
# How the answer's shape is requested, most to least constrained (the judge negotiates down this list).
OUTPUT_MODES = ("json_schema", "json_object", "prompt")
OutputMode = Literal["json_schema", "json_object", "prompt"]


def verdict_model(category: Category) -> type[BaseModel]:
    severity = Literal[tuple(category.severities)] | None  # type: ignore[valid-type]
    return create_model(f"Verdict_{category.id}", __config__=ConfigDict(extra="forbid"),
                        flagged=(bool, ...), severity=(severity, ...), rationale=(str, ...))


def answer_model(categories: list[Category]) -> type[BaseModel]:
    fields: dict[str, Any] = {c.id: (verdict_model(c), ...) for c in categories}
    return create_model("Verdicts", __config__=ConfigDict(extra="forbid"), **fields)


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the form `strict: true` requires: every property required, no
    additional properties, no defaults or titles; `$defs` inlined (some servers do not follow refs)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            out = {k: walk(v) for k, v in node.items() if k not in ("title", "default")}
            if out.get("type") == "object" and "properties" in out:
                out["required"] = list(out["properties"])
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def response_format(mode: OutputMode, schema: dict[str, Any]) -> dict[str, Any] | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "verdicts", "strict": True, "schema": schema}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}  # llama-cpp-python's server turns `schema` into a grammar
    return None


def _json(text: str) -> Any:
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    start, end = body.find("{"), body.rfind("}")
    return orjson.loads(body[start : end + 1] if start >= 0 and end > start else body)


def json_object(text: str | None) -> dict[str, Any] | None:
    """The JSON object in a model's answer (fenced, or with prose around it), or None."""
    try:
        value = _json(text or "")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_answer(text: str | None, categories: list[Category]) -> dict[str, dict[str, Any] | str]:
    """Per category: the verdict (flagged, severity, rationale), or a failure reason. The whole answer
    failing to parse gives `malformed_judge_output` for every category (the caller re-samples)."""
    try:
        data = _json(text or "")
    except (orjson.JSONDecodeError, ValueError):
        return {c.id: "malformed_judge_output" for c in categories}
    if not isinstance(data, dict):
        return {c.id: "malformed_judge_output" for c in categories}
    if len(categories) == 1 and categories[0].id not in data and "flagged" in data:
        data = {categories[0].id: data}  # a single verdict given bare: unambiguous with one category
    out: dict[str, dict[str, Any] | str] = {}
    for c in categories:
        if c.id not in data:
            out[c.id] = "judge_missing_category"
            continue
        try:
            verdict = verdict_model(c).model_validate(data[c.id])
        except ValidationError:
            out[c.id] = "malformed_judge_output"
            continue
        out[c.id] = {"flagged": verdict.flagged, "severity": verdict.severity,  # type: ignore[attr-defined]
                     "rationale": str(verdict.rationale)[:RATIONALE_CHARS]}  # type: ignore[attr-defined]
    return out


def conforms(text: str | None, categories: list[Category]) -> bool:
    return all(isinstance(v, dict) for v in parse_answer(text, categories).values())
