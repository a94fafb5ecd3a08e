"""The aurora-bench locustfile: simulated devices loading one site's broker and backend.

Run it through ``aurora-bench load`` (headless, local workers, summary and targets), or
directly with locust for the web UI or a run spread over several machines::

    locust -f bench/load/locustfile.py --aurora-state-dir .bench --aurora-site a

Options: ``locust -f bench/load/locustfile.py --help`` (group "aurora-bench load").
"""

from bench.load.users import Esp32s3User, Nrf52840User, Stm32f401User

__all__ = ["Esp32s3User", "Nrf52840User", "Stm32f401User"]
