"""pytest plugin of aurora-bench (entry point ``pytest11``): bench fixtures and scenarios."""

from bench.fixtures import *  # noqa: F403  (fixtures are found by name)
