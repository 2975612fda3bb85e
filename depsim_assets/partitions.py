"""Release partitions, built from the study config when the code location loads.

Assets are declared once, against a placeholder partition set; `bind_to_study` gives them the
study's own releases as a `StaticPartitionsDefinition` (so two studies never share partitions, and
partition mappings work: Dagster cannot map one dynamic partition onto another) and turns the
`WITH_INCUMBENT` marker on an input into the mapping {release: {release, its incumbent}}.
"""

from __future__ import annotations

import dagster as dg

from depsim_assets.core.config import StudyConfig

_PLACEHOLDER = "__release__"
release_partitions = dg.StaticPartitionsDefinition([_PLACEHOLDER])
# On an input of a per-release asset: read this release's partition and its incumbent's.
WITH_INCUMBENT = dg.StaticPartitionMapping({_PLACEHOLDER: [_PLACEHOLDER, "__incumbent__"]})


def study_partitions(config: StudyConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition([r.name for r in config.releases] or ["no-release-declared"])


def incumbent_mapping(config: StudyConfig) -> dg.StaticPartitionMapping:
    """Upstream partition -> the downstream partitions that read it: itself, and each release it is the incumbent of."""
    readers: dict[str, set[str]] = {r.name: {r.name} for r in config.releases}
    for r in config.releases:
        if r.incumbent is not None:
            readers[r.incumbent].add(r.name)
    return dg.StaticPartitionMapping({k: sorted(v) for k, v in readers.items()})


def bind_to_study(assets: list[dg.AssetsDefinition], config: StudyConfig) -> list[dg.AssetsDefinition]:
    partitions = study_partitions(config)
    with_incumbent = incumbent_mapping(config)

    def bind(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.partitions_def != release_partitions:
            return spec
        deps = [dg.AssetDep(d.asset_key, partition_mapping=with_incumbent) if d.partition_mapping == WITH_INCUMBENT else d
                for d in spec.deps]
        return spec.replace_attributes(partitions_def=partitions, deps=deps)

    return [a.map_asset_specs(bind) if a.partitions_def == release_partitions else a for a in assets]
