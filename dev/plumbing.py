"""Copy the shared plumbing from its home notebook into every notebook that carries it, function by function.

    python dev/plumbing.py                       # refresh every copy, then `jupytext --sync` what changed
    python dev/plumbing.py notebooks/09_x.py     # refresh only the notebooks named
    python dev/plumbing.py --check               # only report copies that differ (tests/test_drift.py checks them too)

Every notebook stands alone, so cells such as the data loader are repeated. A shared cell starts with
`#@title Plumbing: NAME`; its home is the notebook listed in HOMES and holds every function of the cell.
A copy holds only what its notebook uses: the home cell's top-level definitions that the notebook's other
code names, and what those use in turn (across all the shared cells), each as the home's exact text, in the
home's order. A copy left with nothing to hold is removed. To give a notebook a shared cell it lacks, paste
the cell's first two lines (the `# %%` line and the `#@title` line) where it belongs and run this script.
Edit the home notebook, then run this.
"""
import ast
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOMES = {  # the start of the cell's title -> the notebook that owns it
    "Plumbing: folders, figures and checks": "01_bigram",
    "Plumbing: the device": "01_bigram",
    "Plumbing: the data": "01_bigram",
    "Plumbing: the attention oracle": "02_self_attention",
    "Plumbing: the check of one attention head": "03_building_gpt",
    "Plumbing: checks of the model's pieces": "03c_the_complete_model",
    "Plumbing: the batch check": "03_building_gpt",
    "Plumbing: checks of sampling and training steps": "01_bigram",
    "Plumbing: command-line checks": "04_gpt",
}
CELL = re.compile(r"^# %%.*$", re.M)


def cells(text):
    """The text split into cells, each starting with its '# %%' line (the part before the first is cells[0])."""
    starts = [m.start() for m in CELL.finditer(text)] + [len(text)]
    return [text[:starts[0]]] + [text[a:b] for a, b in zip(starts, starts[1:])]


def title(cell):
    lines = cell.splitlines()
    return next((t for t in HOMES if len(lines) > 1 and lines[1].startswith("#@title " + t)), None)


def pieces(cell):
    """(head, [(defined names, used names, text)]) of a home cell: its first two lines, then each top-level
    statement with the comment lines above it."""
    lines = cell.splitlines(keepends=True)
    head, body = "".join(lines[:2]), lines[2:]
    tree = ast.parse("".join(body))
    out, start = [], 0
    for node in tree.body:
        end = node.end_lineno
        defined = ({node.name} if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else
                   {t.id for n in ast.walk(node) if isinstance(n, (ast.Assign, ast.AnnAssign))
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)})
        out.append((defined, used(node), "".join(body[start:end])))
        start = end
    tail = "".join(body[start:])
    if out:
        out[-1] = (out[-1][0], out[-1][1], out[-1][2] + tail)
    return head, out


def used(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def copy_for(parts, homes, own=()):
    """The notebook's cells with every shared cell replaced by the home's pieces that the notebook needs;
    the cells it is itself the home of (own) stay whole, and what they use counts as needed."""
    shared = lambda c: title(c) and title(c) not in own
    need = set()
    for c in parts:
        if not shared(c):
            try:
                need |= used(ast.parse(c))
            except SyntaxError:  # cells[0] or a markdown cell that is not Python: no names
                need |= set(re.findall(r"\w+", c))
    kept = {t: [] for t in homes}
    grew = True
    while grew:  # what the notebook names, then what those use, until nothing new
        grew = False
        for t, (_, ps) in homes.items():
            for i, (defined, uses, _) in enumerate(ps):
                if i not in kept[t] and (defined & need or not defined):
                    kept[t].append(i)
                    need |= uses
                    grew = True
    new = []
    for c in parts:
        t = title(c)
        if not shared(c):
            new.append(c)
            continue
        head, ps = homes[t]
        chosen = [ps[i][2] for i in sorted(kept[t]) if ps[i][0]]  # a cell of only bare statements is not carried
        if chosen:
            body = "".join(ps[i][2] for i in sorted(kept[t]))
            if len(chosen) < sum(1 for p in ps if p[0]):
                head = re.sub(r" \(the same in [^)]*\)$", f" (from {HOMES[t]}: the parts this notebook uses)",
                              head.rstrip("\n")) + "\n"
            new.append(head + body)
    return new


def main(argv):
    check_only = "--check" in argv
    named = [pathlib.Path(a).resolve() for a in argv if not a.startswith("--")]
    home_cells = {t: next(c for c in cells((ROOT / "notebooks" / f"{nb}.py").read_text()) if title(c) == t)
                  for t, nb in HOMES.items()}
    homes = {t: pieces(c) for t, c in home_cells.items()}
    changed = []
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        if named and path.resolve() not in named:
            continue
        parts = cells(path.read_text())
        new = copy_for(parts, homes, own=[t for t, nb in HOMES.items() if nb == path.stem])
        if new != parts:
            changed.append(path)
            if not check_only:
                path.write_text("".join(new))
    for path in changed:
        print(("differs: " if check_only else "updated: ") + str(path.relative_to(ROOT)))
        if not check_only:
            subprocess.run(["jupytext", "--sync", str(path)], check=True, capture_output=True)
    return 1 if check_only and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
