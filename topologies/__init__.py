"""fleetstream topologies."""
