"""fleetstream sinks."""
