"""Dagster resources for depsim, one module each."""
