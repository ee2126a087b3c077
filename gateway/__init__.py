"""fleetstream gateway."""
