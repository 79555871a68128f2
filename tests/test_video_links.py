"""Watch and run side by side: every chapter of the lecture is linked from the notebook section that
teaches it, once, in order, and the video's own corrections are linked where they apply."""
import json
import re

import pytest

from notebook_code import NOTEBOOKS, ROOT

VIDEO = "https://www.youtube.com/watch?v=kCc8FmEb1nY"
CHAPTERS = {  # start (h:mm:ss) -> seconds, from the video's own chapter list (the first, the intro, is not taught)
    "0:07:52": 472, "0:09:28": 568, "0:14:27": 867, "0:22:11": 1331, "0:34:53": 2093, "0:38:00": 2280,
    "0:42:13": 2533, "0:47:11": 2831, "0:51:54": 3114, "0:54:42": 3282, "0:58:26": 3506, "1:00:18": 3618,
    "1:02:00": 3720, "1:11:38": 4298, "1:12:46": 4366, "1:13:40": 4420, "1:14:14": 4454, "1:15:39": 4539,
    "1:16:56": 4616, "1:19:11": 4751, "1:21:59": 4919, "1:24:25": 5065, "1:26:48": 5208, "1:32:51": 5571,
    "1:37:49": 5869, "1:42:39": 6159, "1:46:22": 6382, "1:48:53": 6533, "1:54:32": 6872,
}
CORRECTIONS = {"0:57:00": 3420, "1:20:05": 4805}
LINK = re.compile(r"\[▶ (\d:\d\d:\d\d)\]\(" + re.escape(VIDEO) + r"&t=(\d+)s\)")


def markdown(notebook):
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    return [("".join(c["source"]) if isinstance(c["source"], list) else c["source"]) for c in cells if c["cell_type"] == "markdown"]


NOTEBOOK_NAMES = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
LINKS = {nb: [m.groups() for cell in markdown(nb) for m in LINK.finditer(cell)] for nb in NOTEBOOK_NAMES}


def seconds(hms):
    h, m, s = map(int, hms.split(":"))
    return 3600 * h + 60 * m + s


def test_every_link_points_at_the_moment_it_names():
    for nb, links in LINKS.items():
        for label, t in links:
            assert seconds(label) == int(t), (nb, label, t)


def test_every_chapter_is_linked_exactly_once():
    """Once by the notebooks that teach the lecture (01-08); the later ones may point back at a chapter."""
    linked = [label for nb, links in LINKS.items() if nb[:2] <= "08" for label, _ in links if label in CHAPTERS]
    assert sorted(linked) == sorted(CHAPTERS), set(CHAPTERS).symmetric_difference(linked)


@pytest.mark.parametrize("notebook", NOTEBOOK_NAMES)
def test_a_notebooks_chapters_come_in_the_videos_order(notebook):
    times = [int(t) for label, t in LINKS[notebook] if label in CHAPTERS]
    assert times == sorted(times)


def test_the_videos_own_corrections_are_linked():
    linked = {label for links in LINKS.values() for label, _ in links}
    assert set(CORRECTIONS) <= linked


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOK_NAMES if n[:2] in ("01", "02", "03", "04", "05")])
def test_each_lecture_notebook_says_which_span_of_the_video_it_covers(notebook):
    opening = markdown(notebook)[0]
    assert re.search(r"\*\*\d:\d\d:\d\d to \d:\d\d:\d\d", opening), opening[:300]


def test_the_readme_table_gives_the_spans():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    header = next(l for l in readme.splitlines() if l.startswith("| notebook |"))
    assert "video" in header
    for notebook in NOTEBOOK_NAMES:
        if notebook[:2] in ("01", "02", "03", "04", "05"):
            row = next(l for l in readme.splitlines() if l.startswith(f"| [`{notebook}`]"))
            assert re.search(r"\d:\d\d:\d\d.\d:\d\d:\d\d", row), row


TOKENIZER = "https://www.youtube.com/watch?v=zduSFxRajkE"  # "Let's build the GPT Tokenizer", its chapter list
TOKENIZER_CHAPTERS = ["0:00:00", "0:05:50", "0:14:56", "0:18:15", "0:22:47", "0:23:50", "0:27:02", "0:28:35", "0:30:36",
                      "0:34:58", "0:39:20", "0:42:47", "0:48:21", "0:57:36", "1:11:38", "1:14:59", "1:18:26", "1:25:28",
                      "1:28:42", "1:43:27", "1:48:11", "1:49:58", "1:51:41", "2:10:20"]
TOKENIZER_LINK = re.compile(r"\[▶ (\d:\d\d:\d\d)\]\(" + re.escape(TOKENIZER) + r"&t=(\d+)s\)")


@pytest.mark.parametrize("notebook", NOTEBOOK_NAMES)
def test_links_to_the_tokenizer_lecture_point_at_its_chapters(notebook):
    cells = markdown(notebook)
    links = [m.groups() for cell in cells for m in TOKENIZER_LINK.finditer(cell)]
    timed = [m for cell in cells for m in re.findall(re.escape(TOKENIZER) + r"&t=\d+s", cell)]
    assert len(timed) == len(links), "a link to a moment of the tokenizer lecture without the [▶ h:mm:ss](...&t=Ns) form"
    for label, t in links:
        assert seconds(label) == int(t) and label in TOKENIZER_CHAPTERS, (notebook, label, t)
