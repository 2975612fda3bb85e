"""SWE-agent `.traj` files: one JSON document per run.

Both generations are read. v0 (`environment: swe_main`) talks in text: the assistant message carries
the command in `action` and the next user message is the tool's answer. v1 talks in function calls:
assistant `tool_calls`, tool messages linked by `tool_call_ids` (a list: one message may answer
several calls). The raw tool outputs of `trajectory[]` steps are kept per call, apart from what the
agent was shown (the message content, with SWE-agent's state line appended).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import orjson

from depsim_assets.core.agentic.trajectory import CallIds, Interface, Message, Rejected, RepoRef, ToolCall, Trajectory, check_links

ROLES = {"system", "user", "assistant", "tool"}


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return value or {}


class SWEAgentReader:
    name = "swe_agent"

    def accepts(self, document: Any) -> bool:
        return isinstance(document, dict) and isinstance(document.get("history"), list) and (
            "trajectory" in document or "info" in document or any("action" in m for m in document["history"] if isinstance(m, dict)))

    def read(self, document: dict, origin: str, hints: dict[str, str]) -> list[Trajectory]:
        history = [m for m in document["history"] if isinstance(m, dict)]
        if not history:
            raise Rejected("empty_trajectory", "history is empty")
        steps = [s for s in document.get("trajectory") or [] if isinstance(s, dict)]
        function_calling = any(m.get("tool_calls") for m in history)
        messages, observations = (self._v1 if function_calling else self._v0)(history, steps)
        check_links(messages, json_arguments=function_calling)
        config = _json(document.get("replay_config"))
        interface = self._interface(document, config, steps, function_calling)
        instance = config.get("agent", {}).get("name")
        repo_name = (re.sub(r"-\d+$", "", instance) if instance else interface.root.strip("/")).replace("__", "/", 1)
        commit = config.get("env", {}).get("repo", {}).get("base_commit") or hints.get(f"commit:{repo_name}")
        docs = config.get("agent", {}).get("tools", {}).get("command_docs")
        tools = tools_from_docs(docs) if function_calling and isinstance(docs, str) else ()
        return [Trajectory(
            id=origin.removesuffix(".traj"), source=origin, format=self.name, messages=tuple(messages), tools=tools,
            repo=RepoRef(name=repo_name, base_commit=commit, snapshot=hints.get(f"snapshot:{repo_name}@{(commit or '')[:7]}")),
            interface=interface, observations=observations,
        )]

    @staticmethod
    def _v0(history: list[dict], steps: list[dict]) -> tuple[list[Message], dict[str, str]]:
        messages: list[Message] = []
        observations: dict[str, str] = {}
        pending: ToolCall | None = None
        k = j = 0
        for m, role, content in _turns(history):
            if role == "user" and pending is not None:
                messages.append(Message(role="tool", content=content, tool_call_id=pending.id))
                observations[pending.id], j = _step_output(steps, j, pending.command, content)
                pending = None
                continue
            if role == "assistant" and isinstance(m.get("action"), str) and m["action"].strip():
                action = m["action"]
                pending = ToolCall(id=f"step-{k}", name=action.split()[0], arguments=orjson.dumps({"command": action}).decode(), command=action)
                k += 1
                messages.append(Message(role="assistant", content=content, tool_calls=(pending,)))
                continue
            messages.append(Message(role=role, content=content))
        if pending is not None:  # the last call, whose answer the agent never saw
            output, j = _step_output(steps, j, pending.command, None)
            if output is not None:
                observations[pending.id] = output
        return messages, observations

    @staticmethod
    def _v1(history: list[dict], steps: list[dict]) -> tuple[list[Message], dict[str, str]]:
        messages: list[Message] = []
        observations: dict[str, str] = {}
        ids = CallIds()
        j, action = 0, None
        for m, role, content in _turns(history):
            if role == "tool":
                answered = m.get("tool_call_ids") or ([m["tool_call_id"]] if m.get("tool_call_id") else [])
                if not answered:
                    raise Rejected("missing_tool_call_id", "a tool message names no call")
                for raw_id in answered:
                    call_id = ids.answer(str(raw_id))
                    messages.append(Message(role="tool", content=content, tool_call_id=call_id))
                    observations[call_id], j = _step_output(steps, j, action, content)
                continue
            calls = []
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                args = fn.get("arguments")
                calls.append(ToolCall(id=ids.call(str(c.get("id") or "")), name=str(fn.get("name") or ""),
                                      arguments=args if isinstance(args, str) else orjson.dumps(args or {}).decode(),
                                      command=m.get("action") if len(m.get("tool_calls")) == 1 else None))
            action = m.get("action") if calls else action
            messages.append(Message(role=role, content=content, tool_calls=tuple(calls)))
        last = messages[-1] if messages else None
        if last is not None and len(last.tool_calls) == 1:  # the final call (submit), never answered in the history
            output, j = _step_output(steps, j, action, None)
            if output is not None:
                observations[last.tool_calls[0].id] = output
        return messages, observations

    @staticmethod
    def _interface(document: dict, config: dict, steps: list[dict], function_calling: bool) -> Interface:
        tools = config.get("agent", {}).get("tools", {})
        env = tools.get("env_variables") or {}
        bundles = " ".join(str(b.get("path", "")) for b in tools.get("bundles") or [] if isinstance(b, dict))
        observations = " ".join(str(s.get("observation", "")) for s in steps)
        state = _json(steps[0].get("state")) if steps else {}
        system = next((str(m.get("content")) for m in document["history"] if isinstance(m, dict) and m.get("role") == "system"), "")
        shown = re.search(r"shows you (\d+) lines", system)  # the window as the agent was told it
        generation = "v0" if document.get("environment") == "swe_main" else "v1"
        root = state.get("working_dir") or (f"/{config['env']['repo']['repo_name']}" if config.get("env", {}).get("repo") else "/testbed")
        return Interface(
            family="swe_agent", generation=generation, window=int(env.get("WINDOW") or (shown.group(1) if shown else 100)), overlap=int(env.get("OVERLAP", 2)),
            root=str(root), tty="\r\n" in observations, cursors="<<<<< START CURSOR >>>>>" in observations,
            edit="replace" if "edit_replace" in bundles else "linting", parse=str(tools.get("parse_function", {}).get("type")
                                                                                 or ("function_calling" if function_calling else "thought_action")),
        )


def _turns(history: list[dict]) -> Iterator[tuple[dict, str, str]]:
    """(message, role, text content) of the run's own turns (demonstrations shown to the agent skipped)."""
    for m in history:
        if m.get("is_demo"):
            continue
        role = m.get("role")
        if role not in ROLES:
            raise Rejected("unknown_role", str(role))
        yield m, role, m.get("content") if isinstance(m.get("content"), str) else ""


def _step_output(steps: list[dict], start: int, action: str | None, fallback: str | None) -> tuple[str | None, int]:
    """The raw output of the next step that ran `action`; the history and the steps do not always align
    (hand-edited demonstrations drop or add steps), so steps are matched on the command, in order."""
    wanted = (action or "").strip()
    for i in range(start, len(steps)):
        if str(steps[i].get("action", "")).strip() == wanted:
            return str(steps[i].get("observation", "")), i + 1
    return fallback, start


DOC_ARG = re.compile(r"^\s*- (\w+) \((\w+)\)( \[required\])?: ?(.*)$")
JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "array": "array"}


def tools_from_docs(docs: str) -> tuple[dict, ...]:
    """OpenAI function definitions from SWE-agent's `command_docs` (the file keeps no JSON schema)."""
    tools: list[dict] = []
    current: dict | None = None
    for line in docs.splitlines():
        if re.match(r"^[A-Za-z_][\w-]*:\s*$", line):
            current = {"name": line.strip()[:-1], "description": "", "parameters": {"type": "object", "properties": {}, "required": []}}
            tools.append(current)
        elif current is not None and line.strip().startswith("docstring:"):
            current["description"] = line.split("docstring:", 1)[1].strip()
        elif current is not None and (arg := DOC_ARG.match(line)):
            name, kind, required, text = arg.groups()
            current["parameters"]["properties"][name] = {"type": JSON_TYPES.get(kind, "string"), "description": text}
            if required:
                current["parameters"]["required"].append(name)
    return tuple({"type": "function", "function": t} for t in tools)
