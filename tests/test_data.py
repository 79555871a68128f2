"""The plumbing every notebook carries (data loader, folders, device): the right text, or one clear line."""
import hashlib
import os
import subprocess
import sys

import sys

import pytest
import torch

from notebook_code import NOTEBOOKS, ROOT, load, source_of

LOADER = ("DATA_URL", "DATA_SHA256", "fetch_shakespeare", "read_text", "load_text", "check_split_sizes")
PLUMBING = ("course_root", "SCRATCH", "runs_folder", "show", "CheckFailed", "check")
DEVICE = ("pick_device", "describe_device")
ESSENTIAL = ("DATA_URL", "DATA_SHA256", "fetch_shakespeare", "read_text", "load_text")
READERS = sorted(p.stem for p in NOTEBOOKS.glob("*.py") if "def load_text(" in p.read_text())


def one_line_error(excinfo):
    message = str(excinfo.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.fixture(params=READERS)
def nb(request):
    return load(request.param)


def test_every_notebook_carries_the_same_plumbing():
    """Each notebook is standalone, so each has its own copy of what it uses; the copies must not drift, and
    every notebook that reads the data carries the whole way to it (find, download, verify)."""
    assert READERS and READERS[0] == "01_bigram"
    for notebook in sorted(p.stem for p in NOTEBOOKS.glob("*.py")):
        names = PLUMBING + (LOADER + DEVICE if notebook in READERS else ())
        for name in names:
            try:
                copy = source_of(notebook, name)
            except LookupError:  # dev/plumbing.py carries only what a notebook uses
                assert name not in ESSENTIAL or notebook not in READERS, f"{notebook} reads the data without {name}"
                continue
            assert copy == source_of("01_bigram", name), (notebook, name)
    assert subprocess.run([sys.executable, str(ROOT / "dev" / "plumbing.py"), "--check"],
                          capture_output=True, text=True).returncode == 0, "a copy differs: run python dev/plumbing.py"


def carried(name):
    """The readers that carry `name` (a behaviour test runs on every copy there is)."""
    return [nb for nb in READERS if f"def {name}(" in (NOTEBOOKS / f"{nb}.py").read_text()]


def test_the_shakespeare_in_datasets_is_verified(nb, shakespeare, monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")  # where Jupyter and nbval run a notebook
    monkeypatch.delenv("COURSE_DATA", raising=False)
    assert nb["load_text"]() == shakespeare
    assert hashlib.sha256(shakespeare.encode()).hexdigest() == nb["DATA_SHA256"]


def test_own_text_from_course_data(nb, tmp_path, monkeypatch):
    own = tmp_path / "mine.txt"
    own.write_text("To be, or not to be — ça va\n", encoding="utf-8")
    monkeypatch.setenv("COURSE_DATA", str(own))
    assert nb["load_text"]() == "To be, or not to be — ça va\n"
    own.write_bytes(b"\xef\xbb\xbf" + own.read_bytes())  # a byte-order mark, as some editors write
    assert nb["load_text"]() == "To be, or not to be — ça va\n"


def test_the_error_names_what_the_learner_used(nb, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "nope.txt"))
    with pytest.raises(SystemExit, match="fix the path given to COURSE_DATA, or unset it"):
        nb["load_text"]()
    with pytest.raises(SystemExit, match="fix the path given to --data$"):
        nb["load_text"](tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(SystemExit, match="point --data at a file with text"):
        nb["load_text"](tmp_path / "empty.txt", flag="--data")


def test_an_unreadable_file_is_one_line(nb, tmp_path, monkeypatch):
    (tmp_path / "locked.txt").write_text("text")
    monkeypatch.setattr(nb["pathlib"].Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(SystemExit) as excinfo:
        nb["read_text"](tmp_path / "locked.txt")
    assert "cannot read" in one_line_error(excinfo) and "Permission denied" in str(excinfo.value.code)


@pytest.mark.parametrize("notebook", carried("check_split_sizes"))
def test_a_split_too_short_for_one_block_is_one_line(notebook):
    nb = load(notebook)
    nb["check_split_sizes"](torch.zeros(20), torch.zeros(9), 8)
    with pytest.raises(SystemExit) as excinfo:
        nb["check_split_sizes"](torch.zeros(20), torch.zeros(8), 8, flag="--block-size")
    assert "validation split has 8 characters" in one_line_error(excinfo) and "smaller --block-size" in str(excinfo.value.code)


def test_the_text_beside_a_lone_notebook_is_found(nb, shakespeare, tmp_path, monkeypatch):
    (tmp_path / "tinyshakespeare.txt").write_text(shakespeare, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the notebook and its text, alone in one folder (as in Jupyter: no __file__)
    monkeypatch.delenv("COURSE_DATA", raising=False)
    monkeypatch.setattr(nb["urllib"].request, "urlretrieve", lambda *a, **k: pytest.fail("downloaded"))
    nb.pop("__file__", None)
    assert nb["load_text"]() == shakespeare


def test_the_course_root_is_one_place_whatever_the_working_folder(nb, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert nb["course_root"]().resolve() == ROOT
    monkeypatch.chdir(ROOT / "notebooks")  # Jupyter and nbval run a notebook here
    assert str(nb["course_root"]()) == ".." and nb["course_root"]().resolve() == ROOT
    monkeypatch.chdir(tmp_path)  # a script started from elsewhere finds its checkout through __file__
    assert nb["course_root"]() == ROOT
    nb["__file__"] = str(tmp_path / "copied_notebook.py")  # a notebook on its own (Colab): its working folder
    assert str(nb["course_root"]()) == "."


def test_asking_for_a_missing_device_is_one_line(nb):
    assert nb["pick_device"]("cpu") == "cpu" and nb["pick_device"]() in ("cuda", "mps", "cpu")
    for device in ("cuda", "mps"):
        if not (torch.cuda.is_available() if device == "cuda" else torch.backends.mps.is_available()):
            with pytest.raises(SystemExit) as excinfo:
                nb["pick_device"](device)
            assert f"--device {device}" in one_line_error(excinfo)


def test_colab_without_a_gpu_is_told_how_to_get_one(nb, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "google.colab", object())
    line = nb["describe_device"]("cpu")
    assert "Runtime → Change runtime type" in capsys.readouterr().out and line.startswith("device: cpu")


@pytest.mark.parametrize("content,expected", [
    (None, "no text file at"), (b"", "has no text"), (b" \n\n", "has no text"),
    (b"caf\xe9 latin-1", "is not UTF-8"),
])
def test_bad_own_text_is_one_line(nb, tmp_path, monkeypatch, content, expected):
    path = tmp_path / "mine.txt"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setenv("COURSE_DATA", str(path))
    with pytest.raises(SystemExit) as excinfo:
        nb["load_text"]()
    assert expected in one_line_error(excinfo) and str(path) in str(excinfo.value.code)


def test_wrong_checksum_stops_and_keeps_the_file(nb, tmp_path):
    (tmp_path / "tinyshakespeare.txt").write_text("not Shakespeare\n")
    with pytest.raises(SystemExit) as excinfo:
        nb["fetch_shakespeare"](tmp_path)
    assert "delete it and run again" in one_line_error(excinfo)
    assert (tmp_path / "tinyshakespeare.txt").read_text() == "not Shakespeare\n"


def test_no_file_and_no_network_is_one_line(nb, tmp_path, monkeypatch):
    nb["DATA_URL"] = "http://127.0.0.1:9/input.txt"  # nothing listens on the discard port
    nb["__file__"] = str(tmp_path / "alone.py")  # a notebook on its own: datasets/ in its working folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COURSE_DATA", raising=False)
    with pytest.raises(SystemExit) as excinfo:
        nb["load_text"]()
    assert "could not download" in one_line_error(excinfo)
    assert list((tmp_path / "datasets").iterdir()) == []  # no half-written file left behind


def test_download_is_verified_before_it_is_kept(nb, shakespeare, tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(shakespeare, encoding="utf-8")
    bad.write_text(shakespeare[:-1], encoding="utf-8")
    nb["DATA_URL"] = bad.as_uri()
    with pytest.raises(SystemExit) as excinfo:
        nb["fetch_shakespeare"](tmp_path / "datasets")
    assert "the download from" in one_line_error(excinfo)
    assert list((tmp_path / "datasets").iterdir()) == []
    nb["DATA_URL"] = good.as_uri()
    path = nb["fetch_shakespeare"](tmp_path / "datasets")
    assert path.read_text(encoding="utf-8") == shakespeare


def test_the_script_stops_with_one_line(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    env = {**os.environ, "COURSE_DATA": str(tmp_path / "empty.txt")}
    run = subprocess.run([sys.executable, str(NOTEBOOKS / "01_bigram.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0 and run.stderr.startswith("error: "), run.stderr
