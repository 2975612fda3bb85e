"""Plain typed functions the assets call; importable and testable without Dagster."""
