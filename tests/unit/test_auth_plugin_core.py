"""The aurora_auth plugin's C core: its own tests (cache, body encoding, topic rules, ACL
file), built with -Wall -Wextra -Werror and sanitizers, no broker needed."""

from __future__ import annotations

import subprocess

from bench.services.auth_plugin import PLUGIN_DIR


def test_c_core_and_build_are_warning_free() -> None:
    """`make test` builds the plugin and the core's tests with -Wall -Wextra -Werror."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(PLUGIN_DIR), "test"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 failed" in result.stdout
