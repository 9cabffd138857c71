"""Operational helpers run from the Makefile (local Redis)."""
