"""The report's budget tiers: none may allow more memory than the device has."""

from __future__ import annotations

from search.summary import CONFIGURED, budget_tiers

MCU = {"peak_memory_kb": 320.0, "flash_kb": 1024.0}


def _run(budget: dict, tiers: list | None = None, limits: dict | None = MCU) -> dict:
    return {"budget": budget, "tiers": tiers or [], "device": {"memory_limits": limits}}


def test_the_looser_tier_stops_at_the_devices_memory():
    tiers = budget_tiers(_run({"latency_ms": 10.0, "peak_memory_kb": 320.0, "flash_kb": 1024.0}))
    tighter, configured, looser = tiers
    assert configured["name"] == CONFIGURED
    assert tighter["peak_memory_kb"] == 160.0 and tighter["flash_kb"] == 512.0
    assert looser["latency_ms"] == 20.0  # latency is not the device's to cap
    assert (looser["peak_memory_kb"], looser["flash_kb"]) == (320.0, 1024.0)
    assert looser["name"] == "looser (bounds \u00d72)"  # export --tier finds it by name


def test_a_looser_tier_still_within_the_device_keeps_its_name():
    tiers = budget_tiers(_run({"latency_ms": 10.0, "peak_memory_kb": 100.0, "flash_kb": 200.0}))
    assert tiers[2]["name"] == "looser (bounds \u00d72)"
    assert (tiers[2]["peak_memory_kb"], tiers[2]["flash_kb"]) == (200.0, 400.0)


def test_a_named_tier_with_no_memory_bound_gets_the_devices():
    tiers = budget_tiers(_run({"latency_ms": 10.0}, [{"name": "slow", "latency_ms": 50.0}]))
    assert tiers[1]["peak_memory_kb"] == 320.0 and tiers[1]["flash_kb"] == 1024.0
    assert tiers[1]["name"] == "slow"


def test_a_host_without_memory_limits_is_unchanged():
    tiers = budget_tiers(_run({"latency_ms": 1.0}, limits=None))
    assert tiers[2] == {
        "name": "looser (bounds \u00d72)",
        "latency_ms": 2.0,
        "peak_memory_kb": None,
        "flash_kb": None,
    }
    old_run = {"budget": {"latency_ms": 1.0}}  # run.json written before memory_limits
    assert budget_tiers(old_run)[2]["latency_ms"] == 2.0
