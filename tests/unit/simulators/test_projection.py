"""``aurora-bench battery``: the projection and its report, in virtual time."""

import pytest

from bench.cli import main
from simulators.errors import SimulatorError
from simulators.projection import project_battery, render_projection


def test_projection_extrapolates_the_simulated_drain() -> None:
    p = project_battery("nrf52840-sentinel", days=2, interval_s=60)
    assert p.brownout_day is None
    assert p.projected_days == pytest.approx(p.usable_c / p.used_c * 2)
    # The steady-state estimate from per-message pricing agrees with the simulation
    # (the simulation adds the one-off TLS handshake and hourly statuses are in the mix).
    assert p.figures[p.transport].projected_days == pytest.approx(p.projected_days, rel=0.03)
    assert p.sleep_floor_days == pytest.approx(2500)
    mqtt, http = p.figures.values()
    assert http.charge_per_message_c > 5 * mqtt.charge_per_message_c
    assert mqtt.projected_days > 4 * http.projected_days


def test_http_at_short_interval_browns_out_within_the_run() -> None:
    p = project_battery(
        "nrf52840-sentinel", days=20, interval_s=5, transport="http", capacity_mah=10
    )
    assert p.brownout_day is not None
    assert p.brownout_day < 1
    assert p.projected_days == pytest.approx(p.brownout_day)
    assert "BROWN-OUT on day" in render_projection(p)


def test_only_the_coin_cell_board_has_a_battery() -> None:
    with pytest.raises(SimulatorError, match="only nrf52840-sentinel runs on a coin cell"):
        project_battery("stm32f401-door")
    with pytest.raises(SimulatorError, match="unknown board 'toaster'"):
        project_battery("toaster")


def test_battery_command_prints_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    main(["battery", "--board", "nrf52840-sentinel", "--days", "1", "--interval", "120"])
    out = capsys.readouterr().out
    assert "projected life" in out
    assert "charge per message (uC)" in out
    assert "months and days" in out  # the seed's claim is quoted and answered


def test_battery_command_refuses_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["battery", "--board", "esp32s3-env"])
    assert caught.value.code == 2
    assert "mains/USB powered" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["battery", "--days", "0"])
    assert "must be > 0" in capsys.readouterr().err
