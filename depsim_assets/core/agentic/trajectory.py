"""The agent trajectory as depsim holds it, whatever format it was read from.

A trajectory is a list of messages (system, user, assistant with tool calls, tool answers), the tool
definitions that were offered, the repository the agent worked in, and the interface settings of the
tools (so a simulator answers in the format the agent saw). Readers build these and raise `Rejected`
with a reason code for what cannot be replayed honestly.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

TRAJECTORY_REASONS = (
    "not_a_trajectory",
    "empty_trajectory",
    "no_assistant_turn",
    "unknown_tool_call_id",
    "missing_tool_call_id",
    "invalid_tool_arguments",
    "unknown_role",
    "no_consent",
)


class Rejected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in TRAJECTORY_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolCall(Frozen):
    id: str
    name: str
    arguments: str = Field("{}", description="the arguments as sent: JSON text for function tools")
    command: str | None = Field(None, description="the command line the call ran, where the format records it")


class Message(Frozen):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class RepoRef(Frozen):
    name: str
    base_commit: str | None = None
    snapshot: str | None = Field(None, description="archive of the repository at base_commit")


class Interface(Frozen):
    """How the recorded tools answered: enough for a simulator to answer alike."""

    family: Literal["swe_agent", "function_tools"] = "function_tools"
    generation: Literal["v0", "v1"] = "v1"
    window: int = 100
    overlap: int = 2
    root: str = "/testbed"
    tty: bool = False
    cursors: bool = False
    edit: Literal["linting", "replace", "none"] = "none"
    parse: str = Field("function_calling", description="how the agent wrote its calls: function_calling, thought_action, ...")


class Trajectory(Frozen):
    id: str
    source: str
    format: str
    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...] = ()
    repo: RepoRef | None = None
    interface: Interface = Interface()
    observations: dict[str, str] = Field({}, description="call id -> the tool's raw output, where the format keeps it apart")

    def calls(self) -> list[tuple[int, ToolCall, str]]:
        """(index of the assistant message, call, recorded answer) for every answered call."""
        answers = {m.tool_call_id: m.content for m in self.messages if m.role == "tool"} | self.observations
        return [(i, c, answers[c.id]) for i, m in enumerate(self.messages) for c in m.tool_calls if c.id in answers]


class CallIds:
    """Unique ids for calls in files that reuse them (hand-built demonstrations do): the n-th call with id
    `x` becomes `x~n`, and a tool message answers the latest call of its id."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.latest: dict[str, str] = {}

    def call(self, raw: str) -> str:
        n = self.seen.get(raw, 0) + 1
        self.seen[raw] = n
        self.latest[raw] = raw if n == 1 else f"{raw}~{n}"
        return self.latest[raw]

    def answer(self, raw: str) -> str:
        return self.latest.get(raw, raw)


def check_links(messages: list[Message], json_arguments: bool) -> None:
    """Every tool answer answers a call made before it; arguments are JSON where the format says so."""
    open_ids: set[str] = set()
    for m in messages:
        for c in m.tool_calls:
            if json_arguments:
                try:
                    orjson.loads(c.arguments or "{}")
                except orjson.JSONDecodeError:
                    raise Rejected("invalid_tool_arguments", f"call {c.id} ({c.name}): {c.arguments[:60]!r}") from None
            open_ids.add(c.id)
        if m.role == "tool":
            if not m.tool_call_id:
                raise Rejected("missing_tool_call_id", "a tool message names no call")
            if m.tool_call_id not in open_ids:
                raise Rejected("unknown_tool_call_id", f"{m.tool_call_id!r} answers no earlier call")
            open_ids.discard(m.tool_call_id)
    if not any(m.role == "assistant" for m in messages):
        raise Rejected("no_assistant_turn")
