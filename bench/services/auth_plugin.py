"""The bench's Mosquitto plugin ``aurora_auth`` (``bench/mosquitto_plugin``): where it is,
and building it when it is missing or older than its sources.

``make setup`` builds it; a site start runs ``make`` again (a no-op when up to date) so a
checkout never starts a broker with a stale plugin.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.errors import ServiceStartError
from bench.file_lock import file_lock

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "mosquitto_plugin"
PLUGIN_SO = PLUGIN_DIR / "build" / "aurora_auth.so"
_HOW_TO_FIX = (
    "run `make plugin` (needs gcc, make, mosquitto-dev, libmosquitto-dev, "
    "libcurl4-openssl-dev and libssl-dev; `make setup` installs them)"
)


def ensure_plugin() -> Path:
    """The path of the built plugin; builds it first when needed.

    Raises :class:`ServiceStartError` with the compiler's output when it cannot be built.
    """
    make = shutil.which("make")
    if make is None:
        if PLUGIN_SO.is_file():
            return PLUGIN_SO
        raise ServiceStartError("aurora_auth plugin", f"`make` is not installed; {_HOW_TO_FIX}")
    # Several benches (parallel test sessions) may start at once: one builds, the others
    # wait and then find it up to date.
    with file_lock(PLUGIN_SO.parent / ".build.lock"):
        result = subprocess.run(
            [make, "--no-print-directory", "-C", str(PLUGIN_DIR)],
            check=False,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
    if result.returncode != 0 or not PLUGIN_SO.is_file():
        raise ServiceStartError(
            "aurora_auth plugin",
            f"building {PLUGIN_SO} failed; {_HOW_TO_FIX}",
            (result.stdout + result.stderr)[-4000:],
        )
    return PLUGIN_SO
