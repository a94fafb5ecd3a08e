"""``python -m bench`` is ``aurora-bench``."""

from bench.cli import main

main()
