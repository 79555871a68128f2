"""Every measured number a notebook's prose quotes comes from that notebook's stored outputs.

A number with three or more decimals (4.8786, 0.1574), with thousands separators (1,115,394), or with
decimals and the unit of a measurement (1.19x, 69.6 ms, 12.5 s, 4.3 GB, 39.8%) in a markdown cell must
appear in the text the notebook's cells printed, unless it is listed below as a fact from elsewhere,
with where it comes from."""
import json
import re

import pytest

from notebook_code import NOTEBOOKS

FROM_ELSEWHERE = {  # notebook: {number: where it comes from}
    "01_bigram": {"40,000": "the file's line count, asserted in the data cell", "20,000": "the size of the BPE sample, set in code",
                  "50,257": "GPT-2's vocabulary size (Radford et al., 2019)"},
    "02_self_attention": {},
    "03_building_gpt": {"4,000": "the budget, set in code", "35,000": "a text size, set in code"},
    "03b_blocks_and_the_ladder": {"4,000": "the budget, set in code (03's)"},
    "04_gpt": {"2,500": "the small configuration's steps, set in code",
               "2,000": "the sample length of the temperature comparison, set in code"},
    "04b_dropout_and_learning_rate": {"35,000": "the text size of the dropout comparison, set in code", "31,500": "90% of 35,000",
                                      "20,000": "the validation slice of the learning-rate comparison, set in code"},
    "05_fast_gpt": {},
    "10_tokenizer": {},
    "09b_muon_and_the_race": {"3.4445": "Muon's Newton-Schulz coefficients (Jordan et al., 2024), set in code", "4.7750": "the same",
                              "2.0315": "the same"},
}
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d{3,}|\d{1,3}(?:,\d{3})+)(?![\w])"
                    r"|(?<![\w.])(\d+\.\d+)(?=\s?(?:x\b|×|%| ms\b| s\b| GB\b| min\b| seconds\b))")


def stored(notebook):
    nb = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text(encoding="utf-8"))
    text = lambda s: s if isinstance(s, str) else "".join(s)
    prose = [text(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    outputs = "".join(text(o.get("text", "")) + text(o.get("data", {}).get("text/plain", ""))
                      for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    return prose, outputs


@pytest.mark.parametrize("notebook", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_numbers_in_the_prose_come_from_the_outputs(notebook):
    prose, outputs = stored(notebook)
    allowed = FROM_ELSEWHERE.get(notebook, {})
    missing = sorted({n for cell in prose for m in NUMBER.findall(re.sub(r"\(https?://[^)]*\)", "", cell)) for n in m if n
                      if n not in outputs and n.replace(",", "") not in outputs and n not in allowed})
    assert not missing, f"numbers in {notebook}'s prose that no output shows: {missing}"
