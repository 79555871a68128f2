"""The range a correct run lands in, which the notebooks print beside a learner's result, covers every
seed measured with the notebooks' own code (python dev/bands.py, results in dev/results/bands.json)."""
import json

import pytest

from notebook_code import ROOT, load

BANDS = json.loads((ROOT / "dev" / "results" / "bands.json").read_text())


@pytest.mark.parametrize("notebook,key,band_of", [
    ("01", "01_bigram", lambda ns: ns["EXPECTED_VAL"]),
    ("04", "04_gpt", lambda ns: ns["EXPECTED_VAL"]["small"]),
    ("05", "05c_against_the_clock", lambda ns: ns["EXPECTED_VAL"]["cpu"]),
])
def test_the_printed_range_covers_every_measured_seed(notebook, key, band_of):
    low, high = band_of(load(key))
    seeds = BANDS[notebook]
    assert len(seeds) >= 3
    for seed, result in seeds.items():
        assert low <= round(result["val"], 2) <= high, (seed, result["val"])
    assert high - low <= 0.05  # tight enough to tell a mistake from bad luck
