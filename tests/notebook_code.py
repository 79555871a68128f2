"""Load a notebook's own definitions for testing, without running its training.

The notebooks are the code under test; there is no second copy. `load("01_bigram")` parses
notebooks/01_bigram.py and runs only its imports, function and class definitions, and
constant assignments (UPPER_CASE names), methods attached to a class (`Model.generate = generate`),
plus any assignment whose names are listed in `keep`.
Globals the definitions read (block_size, train_data, device, ...) are passed as keywords.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _names(node):
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names = set()
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
            elif not isinstance(sub, (ast.Tuple, ast.List, ast.Store, ast.Load)):
                return set()  # attribute or subscript targets: not a definition
    return names


def _attaches_a_method(node):
    """`Class.name = function`: a method defined in its own cell and attached to a class."""
    return (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Name)
            and isinstance(node.targets[0], ast.Attribute) and isinstance(node.targets[0].value, ast.Name))


def load(notebook, keep=(), replace=(), **globals_):
    """Namespace of notebooks/<notebook>.py's definitions (see the module docstring).

    replace: (old, new) pairs applied to the source first, each old text occurring exactly once:
    the tests use it to make a learner's mistake in the notebook's own code."""
    path = NOTEBOOKS / f"{notebook}.py"
    source = path.read_text(encoding="utf-8")
    for old, new in replace:
        assert source.count(old) == 1, f"{old!r} occurs {source.count(old)} times in {path.name}, not once"
        source = source.replace(old, new)
    tree = ast.parse(source, filename=str(path))
    body = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            body.append(node)
        elif _attaches_a_method(node):
            body.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            names = _names(node)
            if names and all(n.isupper() or n in keep for n in names):
                body.append(node)
    namespace = {"__name__": f"notebook_{notebook}", "__file__": str(path), **globals_}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


def source_of(notebook, name):
    """The source text of the top-level def or class `name` in notebooks/<notebook>.py."""
    path = NOTEBOOKS / f"{notebook}.py"
    src = path.read_text(encoding="utf-8")
    for node in ast.parse(src).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign)) and name in (
                [getattr(node, "name", None)] + [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]):
            return ast.get_source_segment(src, node)
    raise LookupError(f"{name} is not defined at the top level of {path.name}")


def cell_statements(notebook, marker):
    """The statements (not the defs and classes) of the one code cell of notebooks/<notebook>.py holding marker,
    compiled: exec it in a namespace from load() to replay that cell as the notebook runs it."""
    cells = (NOTEBOOKS / f"{notebook}.py").read_text(encoding="utf-8").split("\n# %%")
    found = [c.split("\n", 1)[1] for c in cells if marker in c]
    assert len(found) == 1, f"{marker!r} is in {len(found)} cells of {notebook}, not one"
    tree = ast.parse(found[0])
    tree.body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    return compile(tree, notebook, "exec")
