"""Sensor physics of the simulated boards: pure functions of time and a seeded RNG.

* AHT21B (ESP32-S3 node): temperature follows a daily sine (coolest near 03:00, warmest
  near 15:00) plus Gaussian noise; relative humidity moves against temperature. A read may
  time out (the I2C sensor does not answer), which is how the seed's ``sensor_unhealthy``
  alert arises.
* PIR (ESP32-S3 node): people arrive as a Poisson process whose rate follows office hours;
  each arrival keeps the output high for a hold time (retriggered by the next arrival).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Climate:
    """The room an environmental sensor sits in."""

    mean_temperature_c: float = 22.0
    daily_swing_c: float = 3.0
    warmest_hour: float = 15.0
    mean_humidity_pct: float = 45.0
    humidity_swing_pct: float = 8.0
    temperature_noise_c: float = 0.1
    humidity_noise_pct: float = 0.8

    def temperature_c(self, time_of_day_s: float) -> float:
        """Noise-free temperature at this time of day."""
        phase = 2 * math.pi * (time_of_day_s / DAY_S - self.warmest_hour / 24)
        return self.mean_temperature_c + self.daily_swing_c * math.cos(phase)

    def humidity_pct(self, time_of_day_s: float) -> float:
        """Noise-free relative humidity: highest when the room is coolest."""
        phase = 2 * math.pi * (time_of_day_s / DAY_S - self.warmest_hour / 24)
        return self.mean_humidity_pct - self.humidity_swing_pct * math.cos(phase)


@dataclass(frozen=True, slots=True)
class Reading:
    """One AHT21B measurement (values rounded to the sensor's 0.01 resolution)."""

    temperature_c: float
    humidity_pct: float


def read_aht21b(climate: Climate, time_of_day_s: float, rng: random.Random) -> Reading:
    """A noisy AHT21B reading at this time of day."""
    temperature = climate.temperature_c(time_of_day_s) + rng.gauss(0, climate.temperature_noise_c)
    humidity = climate.humidity_pct(time_of_day_s) + rng.gauss(0, climate.humidity_noise_pct)
    return Reading(round(temperature, 2), round(min(100.0, max(0.0, humidity)), 2))


@dataclass(frozen=True, slots=True)
class Occupancy:
    """Arrival rates of people past a PIR sensor (per hour), by office hours."""

    busy_rate_per_h: float = 12.0
    quiet_rate_per_h: float = 0.5
    opens_hour: float = 8.0
    closes_hour: float = 18.0
    hold_s: float = 30.0

    def rate_per_s(self, time_of_day_s: float) -> float:
        """Arrival rate at this time of day."""
        hour = time_of_day_s / 3600.0
        busy = self.opens_hour <= hour < self.closes_hour
        return (self.busy_rate_per_h if busy else self.quiet_rate_per_h) / 3600.0

    def max_rate_per_s(self) -> float:
        """The highest rate of the day (the thinning bound)."""
        return max(self.busy_rate_per_h, self.quiet_rate_per_h) / 3600.0


def next_arrival_s(occupancy: Occupancy, now_of_day_s: float, rng: random.Random) -> float:
    """Seconds until the next arrival (non-homogeneous Poisson by Lewis-Shedler thinning)."""
    bound = occupancy.max_rate_per_s()
    if bound <= 0:
        return math.inf
    waited = 0.0
    while True:
        waited += rng.expovariate(bound)
        t = (now_of_day_s + waited) % DAY_S
        if rng.random() * bound <= occupancy.rate_per_s(t):
            return waited
