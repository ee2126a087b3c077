"""Data: the rmf_api_msgs JSON schema files."""
