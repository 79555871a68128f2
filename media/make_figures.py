"""Copy the figures of the executed notebooks into media/, for the README.

    python media/make_figures.py

Every PNG a notebook's stored outputs hold becomes media/<notebook>-<k>.png (k counts from 1
in the order the figures appear), so the README shows the figures of the same real run
whose numbers it reports.
"""
import base64
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    for ipynb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(ipynb.read_text(encoding="utf-8"))["cells"]
        pngs = [o["data"]["image/png"] for c in cells if c["cell_type"] == "code"
                for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        for k, png in enumerate(pngs, 1):
            out = ROOT / "media" / f"{ipynb.stem}-{k}.png"
            out.write_bytes(base64.b64decode(png if isinstance(png, str) else "".join(png)))
            print(out.relative_to(ROOT))


if __name__ == "__main__":
    main()
