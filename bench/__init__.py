"""Orchestration: services, PKI, sites, scenario runner, probe, reports, CLI, load, demo."""
