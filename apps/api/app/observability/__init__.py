"""Logging and request context."""
