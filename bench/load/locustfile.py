"""The aurora-bench locustfile: simulated devices loading one site's broker and backend.

Run it through ``aurora-bench load`` (headless, local workers, summary, report and targets),
or directly with locust for the web UI or a run spread over several machines::

    locust -f bench/load/locustfile.py --aurora-state-dir .bench --aurora-site a

Options: ``locust -f bench/load/locustfile.py --help`` (group "aurora-bench load"). A run in
which a device failed to connect, nothing was sent or ingested, or a worker died exits 1.
"""

from locust import events

from bench.load.device import Esp32s3User, Nrf52840User, Stm32f401User
from bench.load.hooks import register

register(events)

__all__ = ["Esp32s3User", "Nrf52840User", "Stm32f401User"]
