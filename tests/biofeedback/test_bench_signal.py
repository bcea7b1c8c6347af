"""``bench signal --quick``: the JSON has every part and sane values (not speed)."""

from __future__ import annotations

import json

import main


def test_bench_signal_quick_writes_sane_json(tmp_path, shared_data_dir):
    out = tmp_path / "signal.json"
    assert main.run(["bench", "signal", "--quick", "--json", str(out), "--data", str(shared_data_dir)]) == 0
    r = json.loads(out.read_text())
    assert set(r) >= {"meta", "artifacts", "breathing", "rpeaks", "cost", "targets"}
    for rate in ("2%", "5%"):
        v = r["artifacts"][rate]["vrex"]
        assert 0 <= v["sensitivity_pct"] <= 100 and 0 <= v["specificity_pct"] <= 100
        assert v["artifacts"] > 0 and v["windows"] > 0
        assert v["rmssd_error_pct"] >= 0
    assert r["rpeaks"]["130hz"]["detected"] > 50
    assert 0 < r["rpeaks"]["130hz"]["median_abs_timing_error_ms"] < 10
    assert r["cost"]["pipeline_us_per_beat"] > 0
    for t in r["targets"].values():
        assert t["met"] in (True, False, None)
