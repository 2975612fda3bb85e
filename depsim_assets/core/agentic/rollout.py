"""Multi-step rollouts: the candidate continues an agentic prefix, the simulator answers its tool calls.

Rollouts advance in waves: one model call per active rollout per wave, all sent together through the
completion store (`answer`), then every tool call is answered by the simulator, calls the deterministic
layers cannot answer going to the tool model in one more batch. Each request is a pure function of the
prefix and the answers before it, so re-running after a crash rebuilds every rollout from the store and
sends only what was never answered. A rollout stops on a final answer, a submit, the step limit, the
release's budget, a failed call, or a tool call nobody can answer (recorded with the reason, never invented).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from depsim_assets.core.agentic.prefix import AgenticPrefix
from depsim_assets.core.agentic.simulator import Session, Simulator, ToolRequest, ToolResponse
from depsim_assets.core.agentic.trajectory import Interface, Message, ToolCall
from depsim_assets.core.dispatch import Call
from depsim_assets.core.requests import request_key

STOP_REASONS = ("final_answer", "submit", "recorded_end", "step_limit", "budget", "unanswerable_call", "model_call_failed", "tool_model_failed",
                "unparseable_action")
FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
SUBMIT = {"submit"}


def wire_messages(messages: tuple[Message, ...] | list[Message], interface: Interface) -> list[dict[str, Any]]:
    """Messages as the chat API takes them. Function-calling agents get tool calls and tool messages;
    text agents (SWE-agent's thought_action) saw tool answers as user turns and wrote commands in fences."""
    text_agent = interface.parse != "function_calling"
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "user", "content": m.content} if text_agent else
                       {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls and not text_agent:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def parse_reply(text: str | None, tool_calls: str | None, interface: Interface, step: int) -> list[ToolCall] | None:
    """The tool calls of a reply ([] for a final answer), or None when a text agent's reply has no command."""
    if interface.parse == "function_calling":
        raw = orjson.loads(tool_calls) if tool_calls else []
        return [ToolCall(id=str(c.get("id") or f"r{step}-{i}"), name=str(c["function"]["name"]),
                         arguments=c["function"].get("arguments") or "{}") for i, c in enumerate(raw)]
    blocks = FENCE.findall(text or "")
    if not blocks:
        return None
    command = blocks[-1].strip("\n")
    return [ToolCall(id=f"r{step}", name=command.split(maxsplit=1)[0] if command.strip() else "", command=command,
                     arguments=orjson.dumps({"command": command}).decode())]


@dataclass
class ToolStep:
    step: int
    call_id: str
    command: str
    output: str
    provenance: str
    detail: str


@dataclass
class Rollout:
    prefix: AgenticPrefix
    session: Session | None  # None for a recorded continuation
    messages: list[dict[str, Any]]
    steps: int = 0
    tools: list[ToolStep] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    request_keys: list[str] = field(default_factory=list)
    stop: str | None = None
    stop_detail: str = ""

    def end(self, reason: str, detail: str = "") -> None:
        assert reason in STOP_REASONS, reason
        self.stop, self.stop_detail = reason, detail


Answer = Callable[[list[Call]], pl.DataFrame]  # send what the store lacks, return the store's rows for these calls


@dataclass
class Engine:
    body: Callable[[list[dict[str, Any]], tuple[dict, ...]], dict[str, Any]]  # the candidate's request body
    ask_candidate: Answer
    simulator: Simulator
    release: str
    max_steps: int = 10
    tool_model: Any = None  # ToolModel or None: unanswerable calls then stop the rollout

    def run(self, prefixes: list[AgenticPrefix], session_for: Callable[[AgenticPrefix], Session]) -> list[Rollout]:
        rollouts = [Rollout(p, session_for(p), wire_messages(p.messages, p.interface)) for p in prefixes]
        for r in rollouts:
            self._replay_context(r)
        for _ in range(self.max_steps):
            active = [r for r in rollouts if r.stop is None]
            if not active:
                break
            calls = {id(r): self._call(r) for r in active}
            stored = self.ask_candidate(list(calls.values()))
            by_key = {row["request_key"]: row for row in stored.iter_rows(named=True)}
            pending: list[tuple[Rollout, ToolCall, ToolRequest, ToolResponse]] = []
            for r in active:
                row = by_key.get(calls[id(r)].request_key)
                r.steps += 1
                r.request_keys.append(calls[id(r)].request_key)
                if row is None or row["status"] != "ok":
                    reason = (row or {}).get("failure_reason") or "no outcome stored"
                    r.end("budget" if reason == "budget_exhausted" else "model_call_failed", reason)
                    continue
                pending += self._take_reply(r, row)
            self._answer_unanswered(pending)
            for r, call, request, response in pending:
                self._append(r, call, request, response)
        for r in rollouts:
            if r.stop is None:
                r.end("step_limit", f"{self.max_steps} steps")
        return rollouts

    def _replay_context(self, r: Rollout) -> None:
        """Apply the prefix's own tool calls to the session, so the rollout starts in the prefix's state."""
        for m in r.prefix.messages:
            for c in m.tool_calls:
                request = ToolRequest.of(c)
                if r.session.workspace is not None and request.command is not None:
                    try:
                        r.session.workspace.run(request.command)
                    except (ValueError, IndexError, KeyError, OSError, UnicodeError):
                        pass  # the recorded answer is what the agent saw; the overlay does its best
                r.session.advance(request)

    def _call(self, r: Rollout) -> Call:
        body = self.body(r.messages, r.prefix.tools if r.prefix.interface.parse == "function_calling" else ())
        return Call(request_key=request_key(body, 0), sample_index=0, prefix_id=r.prefix.prefix_id, snapshot_id=None,
                    release=self.release, body=body)

    def _take_reply(self, r: Rollout, row: dict) -> list:
        text, raw_calls = row.get("response_text"), row.get("tool_calls")
        r.replies.append(text or "")
        calls = parse_reply(text, raw_calls, r.prefix.interface, r.steps)
        if r.prefix.interface.parse == "function_calling":
            r.messages.append({"role": "assistant", "content": text, **({"tool_calls": orjson.loads(raw_calls)} if raw_calls else {})})
        else:
            r.messages.append({"role": "assistant", "content": text or ""})
        if calls is None:
            r.end("unparseable_action", "the reply has no fenced command")
            return []
        if not calls:
            r.end("final_answer")
            return []
        out = []
        for call in calls:
            request = ToolRequest.of(call)
            out.append((r, call, request, self.simulator.answer(request, r.session)))
        return out

    def _answer_unanswered(self, pending: list) -> None:
        missing = [(i, item) for i, item in enumerate(pending) if item[3].provenance == "unanswered"]
        if not missing or self.tool_model is None:
            return
        answers = self.tool_model.answer([(r, request) for _, (r, _, request, _) in missing])
        for (i, (r, call, request, _)), response in zip(missing, answers):
            pending[i] = (r, call, request, response)

    def _append(self, r: Rollout, call: ToolCall, request: ToolRequest, response: ToolResponse) -> None:
        if r.stop is not None:
            return
        r.tools.append(ToolStep(r.steps, call.id, request.command or f"{call.name} {call.arguments}", response.output,
                                response.provenance, response.detail))
        if response.provenance == "unanswered":
            r.end("tool_model_failed" if response.detail.startswith("tool model call failed") else "unanswerable_call", response.detail)
            return
        text_agent = r.prefix.interface.parse != "function_calling"
        r.messages.append({"role": "user", "content": response.output} if text_agent else
                          {"role": "tool", "tool_call_id": call.id, "content": response.output})
        if request.verb in SUBMIT:
            r.end("submit")


def recorded_rollout(prefix: AgenticPrefix) -> Rollout:
    """The prefix's own recorded continuation as a rollout: what the recorded agent did from the cut on,
    every tool answer `recorded` (a recorded release's rollouts, for offline studies)."""
    r = Rollout(prefix, None, [])
    answers = {m.tool_call_id: m.content for m in prefix.reference if m.role == "tool"}
    last_calls: tuple[ToolCall, ...] = ()
    for m in prefix.reference:
        if m.role != "assistant":
            continue
        r.steps += 1
        r.replies.append(m.content)
        last_calls = m.tool_calls
        for c in m.tool_calls:
            r.tools.append(ToolStep(r.steps, c.id, c.command or f"{c.name} {c.arguments}", answers.get(c.id, ""), "recorded",
                                    "the release's own recorded trajectory"))
    verbs = [ToolRequest.of(c).verb for c in last_calls]
    r.end("submit" if SUBMIT & set(verbs) else "final_answer" if not last_calls else "recorded_end")
    return r
