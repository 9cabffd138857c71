"""Limits: request body size (and, later, the upstream semaphore and rate limits)."""
