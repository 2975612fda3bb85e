"""De-identify agent traffic before anything is stored: every string through the scrubber, then the gate.

Every text a trajectory (or a rollout) carries — message content and names, tool-call arguments and
command lines, recorded tool outputs, tool descriptions, the working-directory root — is scrubbed in
one pass with the traffic scrubber (same keyed surrogates, so a value scrubbed in a command and in an
output stays equal and recorded answers still match); interface syntax is shielded first (see
`syntax.py`). Canary texts holding known identifiers are planted in the same pass; the independent
gate then scans everything to be stored. A surviving canary or any finding raises `PrivacyGateError`
before a row is returned. Trajectory ids become keyed hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from depsim_assets.core.agentic.syntax import shield, unshield
from depsim_assets.core.agentic.trajectory import Message, ToolCall, Trajectory
from depsim_assets.core.privacy.deidentify import canary_strings
from depsim_assets.core.privacy.gate import PrivacyGateError, canary_values, scan
from depsim_assets.core.privacy.rules import hmac_hex
from depsim_assets.core.privacy.scrub import Scrubber

CANARY_SOURCE = "__canary__"


@dataclass
class ScrubbedTrajectories:
    trajectories: list[Trajectory]
    counts: pl.DataFrame  # group (source), rule, entity, count
    texts_scrubbed: int


def _canary(key: bytes, index: int) -> Trajectory:
    v = canary_values(key, index)
    text = (f"My name is {v['PERSON']}, mail {v['EMAIL_ADDRESS']}, phone {v['PHONE_NUMBER']}, card {v['CREDIT_CARD']}, "
            f"SSN {v['US_SSN']}, host {v['IP_ADDRESS']}, key {v['SECRET']}.")
    call = ToolCall(id="c", name="bash", arguments=f'{{"command": "grep {v["EMAIL_ADDRESS"]} users.csv"}}',
                    command=f"grep {v['EMAIL_ADDRESS']} users.csv")
    return Trajectory(id=f"{CANARY_SOURCE}:{index}", source=CANARY_SOURCE, format="canary", messages=(
        Message(role="user", content=text), Message(role="assistant", tool_calls=(call,)),
        Message(role="tool", content=f"{v['PERSON']},{v['PHONE_NUMBER']}", tool_call_id="c")),
        observations={"c": f"{v['PERSON']},{v['PHONE_NUMBER']},{v['US_SSN']}"})


def _texts(t: Trajectory) -> list[str]:
    out = [t.interface.root]
    for m in t.messages:
        out += [m.content, m.name or ""]
        for c in m.tool_calls:
            out += [c.arguments, c.command or ""]
    out += list(t.observations.values())
    out += [str(tool.get("function", {}).get("description", "")) for tool in t.tools]
    return out


def _rebuild(t: Trajectory, texts: list[str], key: bytes) -> Trajectory:
    """`t` with its texts replaced, in the order `_texts` listed them."""
    it = iter(texts)
    root = next(it)
    messages = []
    for m in t.messages:
        content, name = next(it), next(it)
        calls = []
        for c in m.tool_calls:
            arguments, command = next(it), next(it)
            calls.append(c.model_copy(update={"arguments": arguments, "command": command if c.command is not None else None}))
        messages.append(m.model_copy(update={"content": content, "name": name or None, "tool_calls": tuple(calls)}))
    observations = {k: next(it) for k in t.observations}
    tools = []
    for tool in t.tools:
        description = next(it)
        tools.append({**tool, "function": {**tool["function"], "description": description}} if "function" in tool else tool)
    return t.model_copy(update={
        "id": "t" + hmac_hex(key, "trajectory", f"{t.source}\x00{t.id}")[:24], "messages": tuple(messages),
        "observations": observations, "tools": tuple(tools), "interface": t.interface.model_copy(update={"root": root})})


def gated_scrub(texts: list[str], groups: list[str], scrubber: Scrubber, key: bytes, canaries: int = 3) -> tuple[list[str], pl.DataFrame]:
    """Scrub `texts` with planted canary texts alongside, gate the result (interface syntax shielded),
    and return the scrubbed texts (canaries removed) and replacement counts. Raises PrivacyGateError."""
    planted = [text for i in range(canaries) for text in _texts(_canary(key, i))]
    all_texts = [*texts, *planted]
    all_groups = [*groups, *[CANARY_SOURCE] * len(planted)]
    shielded = pl.Series("text", [shield(t) for t in all_texts], dtype=pl.String)
    scrubbed, counts = scrubber.scrub(shielded, pl.Series("group", all_groups, dtype=pl.String))
    secrets = canary_strings([canary_values(key, i) for i in range(canaries)])
    findings = scan(scrubbed, secrets)
    if findings:
        kinds = sorted({f.kind for f in findings})
        raise PrivacyGateError(f"privacy gate: {len(findings)} identifier(s) survived scrubbing of agent traffic ({', '.join(kinds)}); "
                               "nothing was stored")
    values = [unshield(t) for t in scrubbed.to_list()[:len(texts)]]
    return values, counts.filter(pl.col("group") != CANARY_SOURCE)


def scrub_trajectories(trajectories: list[Trajectory], scrubber: Scrubber, key: bytes, canaries: int = 3) -> ScrubbedTrajectories:
    spans, texts, groups = [], [], []
    for t in trajectories:
        own = _texts(t)
        spans.append(len(own))
        texts += own
        groups += [t.source] * len(own)
    values, counts = gated_scrub(texts, groups, scrubber, key, canaries)
    out, start = [], 0
    for t, n in zip(trajectories, spans):
        out.append(_rebuild(t, values[start:start + n], key))
        start += n
    return ScrubbedTrajectories(out, counts, len(texts))


def stored_texts(trajectories: list[Trajectory]) -> pl.DataFrame:
    """Every string of stored trajectories, shielded as the gate saw it, with its source: what checks re-verify."""
    rows = [(t.source.split(":")[0], shield(text)) for t in trajectories for text in _texts(t)]
    return pl.DataFrame(rows, schema={"source": pl.String, "content": pl.String}, orient="row")
