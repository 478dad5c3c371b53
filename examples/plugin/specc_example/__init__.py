"""An example specc plug-in (examples/plugin/README.md)."""
