"""target_band closing the loop on the simulated strap through the real heart pipeline, on the virtual clock."""

from __future__ import annotations

import asyncio
import math

import pytest

from biofeedback.clock import VirtualClock
from biofeedback.pipeline import HeartPipeline
from biofeedback.simulated import SimulatedSensor
from protocols.controller import ArousalWindow, TargetBandController
from protocols.model import ControllerSpec

TOP_LEVEL = 12  # the heights hierarchy: 0..12


async def _session(seed: int, minutes: float, spec: ControllerSpec) -> tuple[float, float, float, float]:
    clock = VirtualClock()
    ctrl = TargetBandController(spec, start_level=0.0, max_level=TOP_LEVEL)
    shown = {"level": 0.0, "exposed": False}
    # The simulated patient sees how far up the hierarchy the continuous level is (as drive_from_scene does).
    sensor = SimulatedSensor(clock, seed=seed, drive=lambda: shown["level"] / TOP_LEVEL if shown["exposed"] else 0.0)
    pipeline = HeartPipeline()

    async def feed() -> None:
        async for record in sensor.records():
            pipeline.feed(record)

    driver = asyncio.create_task(clock.run())
    feeder = asyncio.create_task(feed())
    try:
        pipeline.begin_baseline(clock.now())
        await clock.sleep(180.0)
        pipeline.end_baseline(clock.now())
        shown["exposed"] = True
        t0 = clock.now()
        ctrl.on_level_changed(t0, 0)
        window = ArousalWindow(spec.arousal_window_s)
        inside = counted = 0
        max_step = 0.0
        lowest, highest = math.inf, -math.inf
        while clock.now() - t0 < minutes * 60.0:
            await clock.sleep(0.25)
            now = clock.now()
            heart = pipeline.state(now)
            decision = ctrl.decide(now, heart, math.floor(shown["level"]), TOP_LEVEL)
            max_step = max(max_step, abs(decision.target_level - shown["level"]))
            shown["level"] = decision.target_level
            lowest, highest = min(lowest, shown["level"]), max(highest, shown["level"])
            if heart.arousal is not None:
                z = window.add(now, heart.arousal)
                if now - t0 >= 120.0:
                    counted += 1
                    inside += spec.band_low_z <= z <= spec.band_high_z
        return inside / counted, max_step, lowest, highest
    finally:
        await sensor.close()
        feeder.cancel()
        driver.cancel()


@pytest.mark.parametrize("seed", [0, 4, 11])
def test_target_band_holds_the_simulated_patient_in_band(seed):
    spec = ControllerSpec(kind="target_band", band_low_z=1.0, band_high_z=2.5, max_levels_per_min=1.0,
                          band_min_level=0.0, band_max_level=8.0)
    in_band, max_step, lowest, highest = asyncio.run(_session(seed, 12.0, spec))
    assert in_band >= 0.8, f"arousal (10-s mean) in band {in_band:.0%} of the time after the first 2 minutes"
    assert max_step <= 1.0 * 0.25 / 60.0 + 1e-9  # never faster than 1 level/min (no safety step-downs here)
    assert 0.0 <= lowest and highest <= 8.0
