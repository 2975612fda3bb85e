"""The recorded layer: real tool answers from ingested trajectories, matched on call *and* state.

Answers are grouped by repository and base commit. A call matches when the interface, the tool, its
canonical arguments and every state-changing call before it are the same (and, for commands whose
answer depends on the window position, the navigation since the last `open`), so a read after an edit
never gets the answer recorded before the edit. Where recordings disagree for one key, the most
frequent answer is given and the disagreement is counted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from depsim_assets.core.agentic.simulator import Attempt, Provenance, Session, ToolRequest, ToolResponse
from depsim_assets.core.agentic.trajectory import RepoRef, Trajectory


def repo_key(repo: RepoRef | None) -> tuple[str, str] | None:
    return (repo.name, repo.base_commit or "") if repo is not None else None


@dataclass
class RecordedCalls:
    """Recorded answers per (repository, commit) -> state key -> answer counts."""

    answers: dict[tuple[str, str], dict[str, Counter]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Counter)))
    origins: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def build(cls, trajectories: list[Trajectory]) -> RecordedCalls:
        db = cls()
        for t in trajectories:
            repo = repo_key(t.repo)
            if repo is None:
                continue
            with Session(t.repo, t.interface) as session:
                for _, call, observation in t.calls():
                    request = ToolRequest.of(call)
                    key = session.key(request)
                    db.answers[repo][key][observation] += 1
                    db.origins[key].add(t.id)
                    session.advance(request)
        return db

    def lookup(self, repo: RepoRef | None, key: str) -> tuple[str, int, int] | None:
        """(answer, times recorded, distinct answers) or None."""
        table = self.answers.get(repo_key(repo) or ("", ""), {})
        counts = table.get(key)
        if not counts:
            return None
        answer, n = counts.most_common(1)[0]
        return answer, n, len(counts)

    @property
    def size(self) -> int:
        return sum(len(t) for t in self.answers.values())


@dataclass
class RecordedLayer:
    calls: RecordedCalls
    name: Provenance = "recorded"

    def answer(self, attempt: Attempt, session: Session) -> ToolResponse | None:
        hit = self.calls.lookup(session.repo, attempt.key)
        if hit is None:
            return None
        answer, n, distinct = hit
        detail = f"recorded {n}x" + (f", {distinct} distinct answers" if distinct > 1 else "")
        return ToolResponse(answer, "recorded", detail)
