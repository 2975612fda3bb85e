"""depsim's command line and run orchestration (outside the Dagster assets package)."""
