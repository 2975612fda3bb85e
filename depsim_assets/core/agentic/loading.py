"""Read a study's trajectory sources: files -> trajectories (with repository hints) + quarantine rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from depsim_assets.core.agentic.readers import read_trajectories
from depsim_assets.core.agentic.trajectory import Trajectory
from depsim_assets.core.config import AgenticConfig, SourceConfig
from depsim_assets.core.ingest import expand_paths


@dataclass
class LoadedTrajectories:
    trajectories: list[Trajectory] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)  # source, origin, reason, detail
    records_in: dict[str, int] = field(default_factory=dict)


def repository_hints(cfg: AgenticConfig, resolve: Callable[[str], Path]) -> dict[str, str]:
    """`commit:<repo>` when the study names one commit for a repository; `snapshot:<repo>@<commit7>` per archive."""
    hints: dict[str, str] = {}
    commits: dict[str, set[str]] = {}
    for r in cfg.repositories:
        commits.setdefault(r.name, set()).add(r.base_commit)
        if r.snapshot:
            hints[f"snapshot:{r.name}@{r.base_commit[:7]}"] = str(resolve(r.snapshot))
    hints |= {f"commit:{name}": next(iter(c)) for name, c in commits.items() if len(c) == 1}
    return hints


def _consented(source: SourceConfig) -> Callable[[Any], bool]:
    if source.consent == "public":
        return lambda doc: True
    allowed = {v.lower() for v in source.consent_values}
    return lambda doc: isinstance(doc, dict) and str(doc.get(source.consent_field, "")).lower() in allowed


def load_trajectory_sources(sources: list[SourceConfig], base: Path, cfg: AgenticConfig,
                            resolve: Callable[[str], Path]) -> LoadedTrajectories:
    out = LoadedTrajectories()
    hints = repository_hints(cfg, resolve)
    for source in (s for s in sources if s.kind == "trajectory"):
        kept, quarantine = read_trajectories(expand_paths(source.paths, base), source.format, hints, admit=_consented(source))
        kept = [t.model_copy(update={"source": f"{source.name}:{t.source}"}) for t in kept]
        out.trajectories += kept
        out.quarantine += [{"source": source.name, **q} for q in quarantine]
        out.records_in[source.name] = len(kept) + len(quarantine)
    return out
