"""Run directories, manifests, metrics, checkpoints, the SQLite index, resume and exports."""
