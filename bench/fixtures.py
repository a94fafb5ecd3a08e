"""pytest fixtures that start real benches (filled in by the services work)."""
