"""Mirrors backend/operations.py cleanup_cache (called by sampling_cleanup)."""


def cleanup_cache():
    pass
