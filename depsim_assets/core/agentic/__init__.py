"""Agentic traffic: trajectories, prefixes and the tool simulator (no dagster imports)."""
