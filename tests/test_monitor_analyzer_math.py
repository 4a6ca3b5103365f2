"""The analyzer's drift distances and file layout, checked against scipy and Java's
formatting (in process: pure functions of the analyzer, no server needed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelyard.monitor.analyzer.statistics import (
    WeightedItems, feature_statistics, profile_column, sketch_levels,
)
from modelyard.monitor.analyzer.statistics_json import dumps, java_double
from modelyard.monitor.analyzer.violations import (
    categorical_distance, chi_squared_p_value, numerical_distance,
)


def _items(values: np.ndarray) -> WeightedItems:
    profile = profile_column("x", pd.Series(values))
    return WeightedItems.from_levels(sketch_levels(profile.sketch))


def test_numerical_distances_are_the_ks_statistic_and_its_robust_correction():
    rng = np.random.default_rng(3)
    baseline, current = rng.normal(0, 1, 1500), rng.normal(0.3, 1, 400)  # below k: exact
    simple = numerical_distance(_items(baseline), _items(current), "Simple")
    assert simple == pytest.approx(stats.ks_2samp(baseline, current).statistic, abs=1e-12)
    robust = numerical_distance(_items(baseline), _items(current), "Robust")
    assert robust == pytest.approx(max(0.0, simple - 1.8 * math.sqrt((1500 + 400) / (1500 * 400))))
    same = numerical_distance(_items(baseline), _items(rng.normal(0, 1, 400)), "Robust")
    assert same == 0.0


def test_large_sketches_stay_within_the_kll_error_of_the_exact_statistic():
    rng = np.random.default_rng(4)
    baseline, current = rng.normal(0, 1, 200_000), rng.normal(0.1, 1.2, 50_000)
    simple = numerical_distance(_items(baseline), _items(current), "Simple")
    assert simple == pytest.approx(stats.ks_2samp(baseline, current).statistic, abs=0.01)


def test_categorical_distances():
    baseline = {"a": 600.0, "b": 300.0, "c": 100.0}
    current = {"a": 100.0, "b": 60.0, "c": 30.0, "d": 10.0}
    simple = categorical_distance(baseline, current, "Simple")
    assert simple == pytest.approx(0.1)  # share of a: 0.6 -> 0.5
    assert categorical_distance(baseline, current, "Robust") == pytest.approx(
        max(0.0, 0.1 - 1.8 * math.sqrt((1000 + 200) / (1000 * 200))))
    shifted = {"a": 100.0, "b": 60.0, "c": 40.0}
    expected = stats.chisquare([100, 60, 40], [120, 60, 20]).pvalue
    assert chi_squared_p_value(baseline, shifted) == pytest.approx(expected)
    assert chi_squared_p_value(baseline, current) == 0.0  # "d" was never seen


def test_profile_types_and_layout():
    mixed = profile_column("m", pd.Series(["1", "2", "x", None, ""], dtype=object))
    assert (mixed.inferred_type, mixed.num_present, mixed.num_missing) == ("String", 3, 2)
    assert mixed.fraction_of("Integral") == pytest.approx(2 / 3)
    numbers = profile_column("n", pd.Series(["1", "2.5", None], dtype=object))
    assert numbers.inferred_type == "Fractional"
    assert feature_statistics(numbers)["numerical_statistics"]["sum"] == 3.5
    empty = profile_column("e", pd.Series([None, None], dtype=object))
    assert empty.inferred_type == "Unknown"
    assert [java_double(v) for v in (320.0, 1.2345678e7, 1e-4, 0.5, float("nan"))] == [
        "320.0", "1.2345678E7", "1.0E-4", "0.5", '"NaN"']
    assert dumps({"a": [{"b": 1}, {"c": []}], "d": {}}) == (
        '{\n  "a" : [ {\n    "b" : 1\n  }, {\n    "c" : [ ]\n  } ],\n  "d" : { }\n}')


def test_capture_records_json_payloads_and_a_record_preprocessor(tmp_path):
    from modelyard.monitor.analyzer.formats import load_preprocessor, read_capture

    def record(payload: dict, output: dict, when: str) -> str:
        import json

        return json.dumps({"captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": json.dumps(payload), "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": json.dumps(output), "encoding": "JSON"}},
            "eventMetadata": {"eventId": "e", "inferenceTime": when}, "eventVersion": "0"})

    lines = [record({"text": "printer jam", "meta": {"len": 11}}, {"label": "printer"},
                    "2026-12-01T10:00:05Z"),
             record({"text": "vpn down", "meta": {"len": 8}}, {"label": "network"},
                    "2026-12-01T10:30:00Z"),
             record({"text": "late", "meta": {"len": 4}}, {"label": "x"}, "2026-12-01T11:00:00Z"),
             "not json"]
    (tmp_path / "capture.jsonl").write_text("\n".join(lines) + "\n")
    from datetime import datetime, timezone

    start = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    end = datetime(2026, 12, 1, 11, tzinfo=timezone.utc)
    files = [tmp_path / "capture.jsonl"]
    dataset = read_capture(files, ["endpointInput", "endpointOutput"], None, start, end)
    assert dataset.skipped == 1 and not dataset.positional
    assert dataset.frame.to_dict("list") == {"label": ["printer", "network"],
                                             "text": ["printer jam", "vpn down"],
                                             "meta.len": [11, 8]}
    script = tmp_path / "preprocessor.py"
    script.write_text(
        "import json\n"
        "def preprocess_handler(inference_record, logger):\n"
        "    text = json.loads(inference_record.endpoint_input.data)['text']\n"
        "    if text == 'vpn down':\n"
        "        return []\n"
        "    label = json.loads(inference_record.endpoint_output.data)['label']\n"
        "    return {'length': len(text), 'category': label}\n")
    dataset = read_capture(files, ["endpointInput", "endpointOutput"],
                           load_preprocessor(str(script)), start, end)
    assert dataset.frame.to_dict("list") == {"length": [11], "category": ["printer"]}
