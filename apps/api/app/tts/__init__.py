"""Synthesis: requests, personas, language, segmenting, providers and the service."""
