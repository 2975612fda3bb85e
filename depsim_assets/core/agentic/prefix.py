"""Agentic prefixes: a trajectory cut before one of its assistant steps.

The candidate is asked for that step with everything the original agent had: the messages so far, the
tool definitions and the repository (name, base commit, snapshot). The original step and the rest of
the trajectory are kept as the reference. Cuts: `final` (the last assistant step), `every`, or a
`sample` of steps per trajectory drawn with a seed that depends on the trajectory, not on the order
of files, so re-ingesting a study gives the same prefixes.
"""

from __future__ import annotations

import hashlib
import random
from typing import Literal

from pydantic import Field

from depsim_assets.core.agentic.trajectory import Frozen, Interface, Message, RepoRef, Trajectory

Cut = Literal["final", "every", "sample"]


class AgenticPrefix(Frozen):
    prefix_id: str
    trajectory_id: str
    source: str = Field("", description="source name and file the trajectory came from")
    step: int = Field(description="1-based index of the assistant step to regenerate")
    steps: int = Field(description="assistant steps in the trajectory")
    messages: tuple[Message, ...]
    reference: tuple[Message, ...] = Field(description="the original step and everything after it")
    tools: tuple[dict, ...] = ()
    repo: RepoRef | None = None
    interface: Interface = Interface()


def cut_points(trajectory: Trajectory) -> list[int]:
    """Indexes of assistant messages that follow at least one user or tool message."""
    points, seen_input = [], False
    for i, m in enumerate(trajectory.messages):
        if m.role == "assistant" and seen_input:
            points.append(i)
        seen_input = seen_input or m.role in ("user", "tool")
    return points


def cut(trajectory: Trajectory, how: Cut = "final", per_trajectory: int = 3, seed: int = 0) -> list[AgenticPrefix]:
    points = cut_points(trajectory)
    if how == "final":
        chosen = points[-1:]
    elif how == "every":
        chosen = points
    else:
        digest = hashlib.sha256(f"{seed}:{trajectory.id}".encode()).digest()
        chosen = sorted(random.Random(digest).sample(points, min(per_trajectory, len(points))))
    return [
        AgenticPrefix(
            prefix_id=f"{trajectory.id}#{points.index(i) + 1}", trajectory_id=trajectory.id, source=trajectory.source, step=points.index(i) + 1,
            steps=len(points), messages=trajectory.messages[:i], reference=trajectory.messages[i:], tools=trajectory.tools,
            repo=trajectory.repo, interface=trajectory.interface,
        )
        for i in chosen
    ]
