"""Data: one Avro schema (.avsc) per record; earlier versions under history/."""
