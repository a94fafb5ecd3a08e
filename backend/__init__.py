"""The AuroraSOC CPS backend: one instance per site (``python -m backend``)."""
