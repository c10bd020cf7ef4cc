"""Handoff for the agencies that use it: `handoff.client`, a Python client of the HTTP API."""
