"""depsim: deployment simulation for language-model releases, as Dagster assets."""
