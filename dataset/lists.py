# New (no OCNet counterpart): the one list-file parser of every dataset. MIT licence.
"""List files: the one parser for every dataset, and the start-up check of the files they name.

Two line formats, mixed freely in one file:

* ``image<TAB>label`` (or whitespace-separated) paths relative to the data root: the original
  Cityscapes lists (``leftImg8bit/... gtFine/..._labelIds.png``); a test list may hold the image only;
* one id per line (VOC ``ImageSets``, sssegmentation's ADE20K lists), expanded with the
  dataset's ``image_dir/<id><image_ext>`` and ``label_dir/<id><label_ext>``.

Every listed file is checked when the dataset is built, so a wrong ``--data-dir`` or a stale list
fails before training starts with the list line and the file that is missing.
"""
from __future__ import annotations

import os
import warnings
from typing import NamedTuple

from utils.errors import DatasetError, MissingFileError


class ListEntry(NamedTuple):
    """One list line: absolute image / label paths (label None for an unlabelled list)."""

    image: str
    label: str | None
    line: int            # 1-based line number in the list file (0 when not from a file)


def read_list(root, list_path, with_label=True, ids=None, layout_hint=None):
    """Parse ``list_path`` into [ListEntry] with paths joined to ``root``; check every file.

    Args:
        root: the data root the list's paths are relative to.
        list_path: the list file.
        with_label: lines must name a label (a two-field line, or an id with ``ids``); with False a
            second field is still read when present, but not required.
        ids: ``(image_dir, image_ext, label_dir, label_ext)`` for one-id lines; None refuses them.
        layout_hint: optional ``f(root) -> str | None`` that explains a wrong data root (used in
            the missing-file error, e.g. "--data-dir holds cityscapes/ one level down").
    Raises:
        MissingFileError: no data dir, no list file, or listed files that do not exist (the first
            few with their line numbers).
        DatasetError: a line without a label where one is needed, or a list without entries.
    """
    if not os.path.isdir(root):
        raise MissingFileError(f"data dir {root!r} does not exist (check --data-dir)")
    if not os.path.isfile(list_path):
        raise MissingFileError(f"list file {list_path!r} does not exist (check --data-list)")
    entries = []
    with open(list_path) as handle:
        for lineno, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split())]
            if len(fields) == 1 and ids is not None:
                image_dir, image_ext, label_dir, label_ext = ids
                entries.append(ListEntry(os.path.join(root, image_dir, fields[0] + image_ext),
                                         os.path.join(root, label_dir, fields[0] + label_ext), lineno))
            elif len(fields) == 1 and with_label:
                raise DatasetError(f"{list_path}:{lineno}: expected 'image<TAB>label', got {line!r}")
            else:
                label = os.path.join(root, fields[1]) if len(fields) > 1 else None
                entries.append(ListEntry(os.path.join(root, fields[0]), label, lineno))
    if not entries:
        raise DatasetError(f"list file {list_path!r} has no entries")
    check_files(entries, list_path, root, layout_hint)
    return entries


def check_files(entries, source, root, layout_hint=None):
    """MissingFileError naming the list line and file of the first few missing files."""
    missing = [(e.line, path) for e in entries for path in (e.image, e.label)
               if path is not None and not os.path.isfile(path)]
    if not missing:
        return
    shown = "\n  ".join(f"{source}:{line}: {path}" if line else path for line, path in missing[:5])
    more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
    hint = layout_hint(root) if layout_hint is not None else None
    raise MissingFileError(f"{len(missing)} file(s) of {source} do not exist under data dir "
                           f"{root!r}:\n  {shown}{more}" + (f"\n{hint}" if hint else ""))


def warn_count(n, expected, what):
    """Warn when a split does not have its official size (e.g. VOC trainaug 10,582)."""
    if expected is not None and n != expected:
        warnings.warn(f"{what} has {n} images, the official split has {expected}; results will not "
                      "be comparable with the published ones", stacklevel=3)
