"""Tune and measure notebook 09b's CPU race: each argument is one set of flags for
`python notebooks/09b_muon_and_the_race.py --race`, run one after the other in fresh processes; the printed
race line is parsed and appended to dev/results/modern_race_tuning.json.

    flock /tmp/course-cpu.lock python dev/modern_ladder.py "" "--seed 1" "--muon-lr 0.05"
    flock /tmp/course-cpu.lock python dev/modern_ladder.py --notebook-05   # notebook 05c's race, for the ratio

Run it under the machine's lock: a second busy process slows torch's threads and spoils the times.
"""
import json
import pathlib
import re
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "dev" / "results" / "modern_race_tuning.json"
LINE = re.compile(r"(\d+) steps in ([\d.]+) s; whole-split val loss ([\d.]+); ([\d.]+) s with the evaluation")


def race(flags, notebook="09b_muon_and_the_race"):
    """Run one race; returns {flags, steps, train_s, total_s, val} from its printed line."""
    cmd = [sys.executable, str(ROOT / "notebooks" / f"{notebook}.py"), "--race", *shlex.split(flags)]
    done = subprocess.run(cmd, cwd=ROOT / "notebooks", capture_output=True, text=True)
    found = LINE.search(done.stdout)
    if not found:
        raise SystemExit(f"error: no race line from {' '.join(cmd)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    steps, train, val, total = found.groups()
    return dict(notebook=notebook, flags=flags, steps=int(steps), train_s=float(train), total_s=float(total), val=float(val),
                when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


def main(argv):
    runs = json.loads(OUT.read_text()) if OUT.exists() else []
    todo = [("", "05c_against_the_clock")] if argv == ["--notebook-05"] else [(a, "09b_muon_and_the_race") for a in argv or [""]]
    for flags, notebook in todo:
        row = race(flags, notebook)
        print(f"{notebook} --race {flags}: {row['steps']} steps in {row['train_s']} s; val {row['val']:.4f}; "
              f"{row['total_s']} s with the evaluation", flush=True)
        runs.append(row)
        OUT.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
