"""Circuits: EAP, EAP-IG and exact patching with hook-free gradient probes; selection, similarity,
edge change and circuit-aware LoRA rank allocation."""
