"""The audio cache: deterministic keys, values with their metadata, TTL policy, single-flight."""
