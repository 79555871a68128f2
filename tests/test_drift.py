"""The notebooks stand alone, so they repeat code; a name defined in several notebooks must mean the
same code in all of them, unless it is listed here as one that each notebook defines its own way."""
import ast
import collections

import pytest

from notebook_code import NOTEBOOKS

OWN_WAY = {  # names that differ on purpose: the lecture's code grows from notebook to notebook
    "get_batch", "split_loss", "estimate_loss", "train", "generate", "Head", "MultiHeadAttention",
    "FeedForward", "Block", "BigramLanguageModel", "parse_args", "check_args", "RULES", "RUN_NAME",
    "EXPECTED_VAL",
}


def definitions():
    """{name: {notebook: source}} for every top-level def, class and UPPER_CASE constant."""
    found = collections.defaultdict(dict)
    for path in sorted(NOTEBOOKS.glob("*.py")):
        src = path.read_text(encoding="utf-8")
        for node in ast.parse(src).body:
            names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [
                t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name) and t.id.isupper()]
            for name in names:
                found[name][path.stem] = ast.get_source_segment(src, node)
    return found


SHARED = {name: copies for name, copies in definitions().items() if len(copies) > 1 and name not in OWN_WAY}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_a_name_shared_by_notebooks_is_the_same_code(name):
    copies = SHARED[name]
    first = next(iter(copies))
    for notebook, source in copies.items():
        assert source == copies[first], f"{name} differs between {first} and {notebook}: copy it again"
