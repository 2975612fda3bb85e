"""OpenAI chat records with tools: `tools` definitions, `tool_calls`, `tool` messages, legacy `function_call`.

One record per JSON line (or a JSON array of records). A legacy `function_call` turn becomes a call
with a synthetic id, and the `function` message that follows answers the latest open call of that name.
Optional `repo: {name, base_commit}` says which repository the agent worked in.
"""

from __future__ import annotations

from typing import Any

import orjson

from depsim_assets.core.agentic.trajectory import CallIds, Interface, Message, Rejected, RepoRef, ToolCall, Trajectory, check_links

ROLE = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool", "function": "tool"}


class OpenAIToolsReader:
    name = "openai_tools"

    def accepts(self, document: Any) -> bool:
        return isinstance(document, dict) and isinstance(document.get("messages"), list)

    def read(self, document: dict, origin: str, hints: dict[str, str]) -> list[Trajectory]:
        raw = document["messages"]
        if not raw:
            raise Rejected("empty_trajectory", "messages is empty")
        messages: list[Message] = []
        open_legacy: dict[str, list[str]] = {}
        ids = CallIds()
        for i, m in enumerate(raw):
            if not isinstance(m, dict) or m.get("role") not in ROLE:
                raise Rejected("unknown_role", str(m.get("role") if isinstance(m, dict) else type(m).__name__))
            role = ROLE[m["role"]]
            content = m.get("content") if isinstance(m.get("content"), str) else ""
            calls = [self._call(c, ids) for c in m.get("tool_calls") or []]
            if isinstance(m.get("function_call"), dict):
                fc = m["function_call"]
                calls.append(self._call({"id": f"fc-{i}", "function": fc}, ids))
                open_legacy.setdefault(str(fc.get("name")), []).append(f"fc-{i}")
            call_id = ids.answer(str(m["tool_call_id"])) if m.get("tool_call_id") else None
            if m["role"] == "function" and not call_id:
                pending = open_legacy.get(str(m.get("name")), [])
                call_id = pending.pop(0) if pending else None
            messages.append(Message(role=role, content=content, tool_calls=tuple(calls),
                                    tool_call_id=str(call_id) if call_id else None, name=m.get("name")))
        check_links(messages, json_arguments=True)
        repo = document.get("repo") if isinstance(document.get("repo"), dict) else None
        ref = None
        if repo and repo.get("name"):
            commit = repo.get("base_commit")
            ref = RepoRef(name=str(repo["name"]), base_commit=commit,
                          snapshot=hints.get(f"snapshot:{repo['name']}@{(commit or '')[:7]}"))
        tools = tuple(t for t in document.get("tools") or [] if isinstance(t, dict))
        tools += tuple({"type": "function", "function": f} for f in document.get("functions") or [] if isinstance(f, dict))
        rid = document.get("id") or document.get("conversation_id") or origin
        return [Trajectory(id=str(rid), source=origin, format=self.name, messages=tuple(messages), tools=tools,
                           repo=ref, interface=Interface(family="function_tools"))]

    @staticmethod
    def _call(c: dict, ids: CallIds) -> ToolCall:
        fn = c.get("function") or {}
        args = fn.get("arguments", "{}")
        return ToolCall(id=ids.call(str(c.get("id") or "")), name=str(fn.get("name") or ""),
                        arguments=args if isinstance(args, str) else orjson.dumps(args).decode())
