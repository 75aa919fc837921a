"""dataset/lists.py: the one list parser (path pairs, ids, image-only lines) and its start-up checks."""
import os
import warnings

import pytest

from dataset.lists import ListEntry, read_list, warn_count
from utils.errors import DatasetError, MissingFileError


def _files(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_pairs_ids_comments_and_blank_lines(tmp_path):
    _files(tmp_path, "img/a.jpg", "lab/a.png", "img/b.jpg", "lab/b.png")
    lst = tmp_path / "l.txt"
    lst.write_text("# a comment\nimg/a.jpg\tlab/a.png\n\n  b  \n")
    entries = read_list(str(tmp_path), str(lst), ids=("img", ".jpg", "lab", ".png"))
    assert entries == [ListEntry(os.path.join(str(tmp_path), "img/a.jpg"),
                                 os.path.join(str(tmp_path), "lab/a.png"), 2),
                       ListEntry(os.path.join(str(tmp_path), "img", "b.jpg"),
                                 os.path.join(str(tmp_path), "lab", "b.png"), 4)]


def test_image_only_lines(tmp_path):
    _files(tmp_path, "a.png")
    lst = tmp_path / "t.lst"
    lst.write_text("a.png\n")
    assert read_list(str(tmp_path), str(lst), with_label=False) == [
        ListEntry(os.path.join(str(tmp_path), "a.png"), None, 1)]
    with pytest.raises(DatasetError, match=r"t.lst:1: expected 'image<TAB>label'"):
        read_list(str(tmp_path), str(lst))


def test_missing_files_name_the_line_and_file(tmp_path):
    _files(tmp_path, "ok.png", "ok_l.png")
    lines = ["ok.png\tok_l.png"] + [f"m{i}.png\tok_l.png" for i in range(7)]
    lst = tmp_path / "x.lst"
    lst.write_text("\n".join(lines) + "\n")
    with pytest.raises(MissingFileError) as err:
        read_list(str(tmp_path), str(lst), layout_hint=lambda root: f"HINT for {root}")
    msg = str(err.value)
    assert "7 file(s) of" in msg and f"x.lst:2: {tmp_path}/m0.png" in msg and "x.lst:6:" in msg
    assert "x.lst:7:" not in msg and "and 2 more" in msg and msg.endswith(f"HINT for {tmp_path}")


def test_missing_root_list_and_empty_list(tmp_path):
    with pytest.raises(MissingFileError, match="--data-dir"):
        read_list(str(tmp_path / "no"), str(tmp_path / "l"))
    with pytest.raises(MissingFileError, match="--data-list"):
        read_list(str(tmp_path), str(tmp_path / "l"))
    (tmp_path / "l").write_text("\n# nothing\n")
    with pytest.raises(DatasetError, match="no entries"):
        read_list(str(tmp_path), str(tmp_path / "l"))


def test_warn_count():
    with pytest.warns(UserWarning, match="has 3 images, the official split has 5"):
        warn_count(3, 5, "X")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_count(5, 5, "X")
        warn_count(3, None, "X")
