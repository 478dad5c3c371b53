"""The shared training loop and the orchestration of `specc run` (torch imported lazily)."""
