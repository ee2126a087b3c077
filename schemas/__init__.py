"""fleetstream contracts: Avro schemas, pydantic models, codec, topic catalog."""
