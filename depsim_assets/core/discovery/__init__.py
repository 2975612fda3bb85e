"""Behaviour discovery: clusters of completions no taxonomy category describes (see items, seeds, represent, clusters)."""
