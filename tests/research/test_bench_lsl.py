"""``bench lsl`` runs through vrex's outlets and independent inlets and loses nothing (timings are reported, not
asserted)."""

from __future__ import annotations

import json

import pytest

from bench.lsl import run_bench
from main import run

pytestmark = pytest.mark.lsl


def test_bench_lsl_delivers_every_sample_of_every_stream():
    result = run_bench(12, 0.0)
    assert [r["stream"] for r in result["streams"]] == ["ECG", "RR", "HR", "Exposure", "Markers"]
    assert all(r["lost"] == 0 for r in result["streams"]), result
    assert result["streams"][0]["samples"] == 12 * 73


def test_bench_lsl_command_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "lsl.json"
    assert run(["bench", "lsl", "--packets", "10", "--interval-ms", "0", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "median ms" in text and "Markers" in text
    assert json.loads(out.read_text())["target_median_ms"] == 1.0


def test_bench_lsl_refuses_too_few_packets(capsys):
    assert run(["bench", "lsl", "--packets", "2"]) == 2
    assert capsys.readouterr().err.startswith("vrex: error: --packets must be >= 10")
