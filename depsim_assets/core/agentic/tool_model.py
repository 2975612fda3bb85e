"""The `llm` layer: a model answers the tool calls the deterministic layers cannot (running code or
tests, installs, network, history), told to print only what the tool would print.

It is given what a careful human simulator would look at: recorded outputs of the same environment
(the original trajectory's calls and answers, before and after the cut), the current contents of the
files the command names (from the rollout's overlay, so its own edits are visible), and the rollout's
last calls. Output is bounded (`max_tokens`); a fenced reply is unwrapped. Calls go through the
completion store like every model call, so a resumed rollout never asks twice.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import Any

from depsim_assets.core.agentic.simulator import ToolRequest, ToolResponse
from depsim_assets.core.dispatch import Call
from depsim_assets.core.requests import request_key

SYSTEM = ("You simulate the environment of a coding agent: a shell in a repository checkout. Reply with exactly what "
          "the command would print - no commentary, no code fences, no explanation. If the command would fail, print "
          "its error output. Keep outputs as short as the real tool would.")
FENCED = re.compile(r"^```[^\n]*\n(.*?)\n?```\s*$", re.S)


@dataclass
class ToolModel:
    model: str
    ask: Any  # Callable[[list[Call]], pl.DataFrame]: send what the store lacks, return the store's rows
    release: str = "tool-simulator"
    max_tokens: int = 512
    examples: int = 6
    file_chars: int = 4000
    history: int = 5

    def body(self, rollout: Any, request: ToolRequest) -> dict[str, Any]:
        prefix = rollout.prefix
        lines = [f"Repository: {prefix.repo.name if prefix.repo else 'unknown'} at commit "
                 f"{(prefix.repo.base_commit or 'unknown')[:12] if prefix.repo else 'unknown'}; working directory {prefix.interface.root}."]
        examples = _recorded_pairs([*prefix.messages, *prefix.reference])[-self.examples:]
        if examples:
            lines.append("Recorded outputs of this environment (command, then output):")
            lines += [f"$ {cmd}\n{out[:1500]}" for cmd, out in examples]
        files = self._files(rollout, request)
        if files:
            lines.append("Current contents of the files the command names:")
            lines += [f"--- {path} ---\n{text}" for path, text in files]
        if rollout.tools:
            lines.append("The session so far (latest calls):")
            lines += [f"$ {t.command}\n{t.output[:800]}" for t in rollout.tools[-self.history:]]
        lines.append(f"Now print the output of:\n$ {request.command or request.name + ' ' + request.arguments}")
        return {"model": self.model, "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(lines)}],
                "temperature": 0, "max_tokens": self.max_tokens}

    def _files(self, rollout: Any, request: ToolRequest) -> list[tuple[str, str]]:
        workspace = rollout.session.workspace
        if workspace is None or not request.command:
            return []
        try:
            tokens = shlex.split(request.command.split("\n", 1)[0])
        except ValueError:
            tokens = request.command.split()
        out = []
        for token in tokens[1:]:
            rel = workspace.shell.resolve(token)
            if rel and workspace.overlay.is_file(rel):
                out.append((posixpath.join(workspace.interface.root, rel), workspace.overlay.read_text(rel)[:self.file_chars]))
        return out[:3]

    def answer(self, items: list[tuple[Any, ToolRequest]]) -> list[ToolResponse]:
        calls = []
        for rollout, request in items:
            body = self.body(rollout, request)
            calls.append(Call(request_key=request_key(body, 0), sample_index=0, prefix_id=rollout.prefix.prefix_id,
                              snapshot_id=None, release=self.release, body=body))
        rows = {row["request_key"]: row for row in self.ask(calls).iter_rows(named=True)}
        out = []
        for call in calls:
            row = rows.get(call.request_key)
            if row is None or row["status"] != "ok":
                reason = (row or {}).get("failure_reason") or "no outcome stored"
                out.append(ToolResponse("", "unanswered", f"tool model call failed: {reason}"))
                continue
            text = row["response_text"] or ""
            fenced = FENCED.match(text.strip())
            out.append(ToolResponse(fenced.group(1) if fenced else text, "llm", f"tool model {self.model}"))
        return out


def _recorded_pairs(messages: list) -> list[tuple[str, str]]:
    answers = {m.tool_call_id: m.content for m in messages if m.role == "tool"}
    return [(c.command or f"{c.name} {c.arguments}", answers[c.id]) for m in messages for c in m.tool_calls if c.id in answers]
