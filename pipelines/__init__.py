"""fleetstream pipelines."""
