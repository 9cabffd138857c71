"""Rolling figures of the service: per-minute rollups in Redis, read over 5 min / 1 h / 24 h."""
