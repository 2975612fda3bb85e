"""The tool simulator: layers tried in order, provenance on every answer.

A rollout opens a `Session` (its own overlay on the repository snapshot, its own state). Each tool call
is offered to the layers in order — `recorded` (a real answer recorded in the same state), `snapshot`
(computed from the repository), later `llm` — and the first answer wins; when none answers the
response is `unanswered` with the reason. Whatever layer answers, the call is also applied to the
session's workspace, so a later read sees an earlier edit even if the edit's answer was recorded.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from typing import Literal, Protocol

import orjson

from depsim_assets.core.agentic.overlay import Overlay, Snapshot
from depsim_assets.core.agentic.workspace import MUTATING, NAVIGATING, Workspace
from depsim_assets.core.agentic.trajectory import Interface, RepoRef, ToolCall

Provenance = Literal["recorded", "snapshot", "llm", "unanswered"]
SHELL_TOOLS = {"bash", "shell", "execute_bash", "run_command", "terminal"}
SWE_AGENT_COMMANDS = {"open", "goto", "scroll_up", "scroll_down", "create", "find_file", "search_file", "search_dir", "submit"}
POSITION_DEPENDENT = {"goto", "scroll_up", "scroll_down", "edit", "insert", "set_cursors"}


@dataclass(frozen=True)
class ToolRequest:
    name: str
    arguments: str = "{}"
    command: str | None = None  # SWE-agent: the command line as the tool ran it

    @classmethod
    def of(cls, call: ToolCall) -> ToolRequest:
        """A call as the simulator sees it. A shell tool's `command` argument is its command line; a
        function tool named like a SWE-agent command is rendered as one (arguments in their order)."""
        command = call.command
        if command is None:
            try:
                args = orjson.loads(call.arguments or "{}")
            except orjson.JSONDecodeError:
                args = None
            if isinstance(args, dict) and call.name in SHELL_TOOLS and isinstance(args.get("command"), str):
                command = args["command"]
            elif isinstance(args, dict) and call.name == "str_replace_editor":
                head = [call.name, str(args.pop("command", "")), str(args.pop("path", ""))]
                flags = [f"--{k} " + (" ".join(map(str, v)) if isinstance(v, list) else shlex.quote(str(v)))
                         for k, v in args.items() if v is not None]
                command = " ".join([*map(shlex.quote, head), *flags])
            elif isinstance(args, dict) and call.name in SWE_AGENT_COMMANDS:
                command = " ".join([call.name, *(shlex.quote(str(v)) for v in args.values())])
        return cls(name=call.name, arguments=call.arguments, command=command)

    def canonical(self) -> str:
        """Equal for calls that must get the same answer: tokens of the command line (quoting aside)
        and the exact body of multi-line commands; JSON arguments with sorted keys otherwise."""
        if self.command is not None:
            first, _, body = self.command.strip("\n").partition("\n")
            try:
                tokens = shlex.split(first)
            except ValueError:
                tokens = first.split()
            return "\x1f".join(tokens) + "\x1e" + body
        try:
            args = orjson.dumps(orjson.loads(self.arguments or "{}"), option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONDecodeError:
            args = self.arguments
        return f"{self.name}\x1f{args}"

    @property
    def mutates(self) -> bool:
        if self.verb == "str_replace_editor":
            return (self.command or "").split()[1:2] != ["view"]
        return self.verb in MUTATING

    @property
    def verb(self) -> str:
        return (self.command or "").split(maxsplit=1)[0] if self.command and self.command.strip() else self.name


@dataclass(frozen=True)
class ToolResponse:
    output: str
    provenance: Provenance
    detail: str = ""


class Session:
    """One rollout: the workspace over the snapshot and the calls that changed state so far."""

    def __init__(self, repo: RepoRef | None, interface: Interface, snapshot: Snapshot | None = None) -> None:
        self.repo, self.interface = repo, interface
        self.overlay = Overlay(snapshot) if snapshot is not None else None
        self.workspace = Workspace(self.overlay, interface) if self.overlay is not None else None
        self.mutations: list[str] = []
        self.navigation: list[str] = []

    def close(self) -> None:
        if self.overlay is not None:
            self.overlay.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def key(self, request: ToolRequest) -> str:
        """What a recorded answer must match: interface, call and state (the view too, where it matters)."""
        i = self.interface
        parts = [f"{i.family}/{i.generation}/{i.window}/{i.tty}/{i.edit}/{i.cursors}", request.canonical(), *self.mutations]
        if request.verb in POSITION_DEPENDENT or (request.verb == "search_file" and len((request.command or "").split()) < 3):
            parts += ["\x1d", *self.navigation]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    def advance(self, request: ToolRequest) -> None:
        if request.mutates:
            self.mutations.append(request.canonical())
        if request.verb in NAVIGATING:
            self.navigation = [] if request.verb in ("open", "create", "goto") else self.navigation
            self.navigation.append(request.canonical())


@dataclass(frozen=True)
class Attempt:
    """A call being answered: the request, its state key, and what the workspace computed (or None)."""

    request: ToolRequest
    key: str
    computed: str | None


class Layer(Protocol):
    name: Provenance

    def answer(self, attempt: Attempt, session: Session) -> ToolResponse | None: ...


@dataclass
class SnapshotLayer:
    """Answers what the workspace computed from the snapshot and the rollout's edits."""

    name: Provenance = "snapshot"

    def answer(self, attempt: Attempt, session: Session) -> ToolResponse | None:
        return ToolResponse(attempt.computed, "snapshot") if attempt.computed is not None else None


@dataclass
class Simulator:
    layers: list[Layer] = field(default_factory=lambda: [SnapshotLayer()])

    def answer(self, request: ToolRequest, session: Session) -> ToolResponse:
        key = session.key(request)
        computed, failure = None, ""
        if session.workspace is not None and request.command is not None:
            try:
                computed = session.workspace.run(request.command)
            except (ValueError, IndexError, KeyError, OSError, UnicodeError) as err:  # a malformed call: not the rollout's end
                failure = f"the snapshot layer could not parse or apply the call ({type(err).__name__}: {err})"[:300]
        attempt = Attempt(request, key, computed)
        try:
            for layer in self.layers:
                response = layer.answer(attempt, session)
                if response is not None:
                    return response
        finally:
            session.advance(request)
        reason = failure or ("no repository snapshot for this trajectory" if session.workspace is None
                             else f"`{request.verb}` needs execution or history the snapshot cannot give")
        return ToolResponse("", "unanswered", reason)
