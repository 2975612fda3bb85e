"""Behaviour discovery: clusters of completions no taxonomy category describes (items, seeds, represent, clusters, run)."""
