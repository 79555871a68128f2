"""The data loader of every notebook that reads text: the right text, or one clear line."""
import hashlib
import os
import subprocess
import sys

import pytest

from notebook_code import NOTEBOOKS, ROOT, load, source_of

LOADER = ("DATA_URL", "DATA_SHA256", "dataset_folder", "fetch_shakespeare", "read_text", "load_text")
READERS = sorted(p.stem for p in NOTEBOOKS.glob("*.py") if "def load_text(" in p.read_text())


def one_line_error(excinfo):
    message = str(excinfo.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.fixture(params=READERS)
def nb(request):
    return load(request.param)


def test_every_notebook_carries_the_same_loader():
    """Each notebook is standalone, so each has its own copy; the copies must not drift."""
    assert READERS and READERS[0] == "01_bigram"
    for notebook in READERS[1:]:
        for name in LOADER:
            assert source_of(notebook, name) == source_of("01_bigram", name), (notebook, name)


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
