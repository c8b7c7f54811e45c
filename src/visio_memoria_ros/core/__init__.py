"""Shared dataclasses and image helpers: the ground floor, imports nothing of ours."""
