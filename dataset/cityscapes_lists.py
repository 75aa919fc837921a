# New (no OCNet counterpart): the Cityscapes list files made from the official layout. The original
# shipped dataset/list/cityscapes/{train,val,test}.lst; here they are generated from the user's tree.
# MIT licence.
"""Cityscapes list files from the official layout, and the diagnosis of a wrong data root.

The layout of the official archives (``leftImg8bit_trainvaltest.zip``, ``gtFine_trainvaltest.zip``)::

    <data-dir>/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <data-dir>/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The lists have the original's format, sorted by path: ``train.lst`` / ``val.lst`` hold
``leftImg8bit/... <TAB> gtFine/..._gtFine_labelIds.png``, ``test.lst`` the image path only (the
test labels of the archive are all void). ``python -m dataset.cityscapes make-lists --data-dir D``
writes the lists that are missing (``--force`` rewrites them); the run scripts call it by themselves.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from utils.errors import DatasetError, MissingFileError

SPLITS = ("train", "val", "test")
OFFICIAL_COUNTS = {"train": 2975, "val": 500, "test": 1525}
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
TRAINID_SUFFIX = "_gtFine_labelTrainIds.png"
DEFAULT_LIST_DIR = "./dataset/list/cityscapes"


def layout_hint(root):
    """A sentence naming the folder that was expected when ``root`` is not a Cityscapes root, or None.

    Recognises a root one level too high (``root/cityscapes/leftImg8bit``) and a root that is the
    ``leftImg8bit`` (or ``gtFine``) folder itself.
    """
    root = os.path.normpath(os.fspath(root))
    if os.path.isdir(os.path.join(root, "leftImg8bit")):
        return None
    for child in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if os.path.isdir(os.path.join(root, child, "leftImg8bit")):
            return (f"--data-dir {root!r} holds the dataset one level down: pass --data-dir "
                    f"{os.path.join(root, child)!r} (the folder that contains leftImg8bit/ and gtFine/)")
    name = os.path.basename(root)
    if name in ("leftImg8bit", "gtFine") or any(os.path.isdir(os.path.join(root, s)) for s in SPLITS):
        return (f"--data-dir {root!r} looks like a split folder of Cityscapes: pass its parent "
                f"{os.path.dirname(root) or '.'!r} (the folder that contains leftImg8bit/ and gtFine/)")
    return (f"--data-dir {root!r} has no leftImg8bit/ folder: it must be the Cityscapes root, which "
            "contains leftImg8bit/{train,val,test}/<city>/ and gtFine/{train,val,test}/<city>/")


def _stems(folder, suffix):
    """{'<city>/<stem>': relative file name} of every ``*<suffix>`` under ``folder/<city>/``."""
    found = {}
    if not os.path.isdir(folder):
        return found
    for city in sorted(os.listdir(folder)):
        city_dir = os.path.join(folder, city)
        if not os.path.isdir(city_dir):
            continue
        for name in os.listdir(city_dir):
            if name.endswith(suffix):
                found[f"{city}/{name[:-len(suffix)]}"] = f"{city}/{name}"
    return found


def split_lines(data_dir, split):
    """The sorted list lines of one split; DatasetError / MissingFileError for a wrong layout."""
    hint = layout_hint(data_dir)
    if hint is not None:
        raise MissingFileError(hint)
    image_dir = os.path.join(data_dir, "leftImg8bit", split)
    images = _stems(image_dir, IMAGE_SUFFIX)
    if not images:
        raise MissingFileError(f"no *{IMAGE_SUFFIX} files in {image_dir}/<city>/: expected the "
                               f"'{split}' split of leftImg8bit_trainvaltest.zip there")
    if split == "test":
        return sorted(f"leftImg8bit/{split}/{rel}" for rel in images.values())
    label_dir = os.path.join(data_dir, "gtFine", split)
    labels = _stems(label_dir, LABEL_SUFFIX)
    if not labels:
        if _stems(label_dir, TRAINID_SUFFIX):
            raise DatasetError(
                f"{label_dir} holds *{TRAINID_SUFFIX} but no *{LABEL_SUFFIX}: the loader reads the "
                f"official labelIds (it maps them to trainIds itself). Unpack gtFine_trainvaltest.zip "
                f"there, which has the *{LABEL_SUFFIX} files.")
        raise MissingFileError(f"no *{LABEL_SUFFIX} files in {label_dir}/<city>/: expected the "
                               f"'{split}' split of gtFine_trainvaltest.zip there")
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        shown = ", ".join(images[s] for s in unlabelled[:3])
        raise DatasetError(f"{len(unlabelled)} {split} image(s) have no {LABEL_SUFFIX} in {label_dir}, "
                           f"e.g. {shown}: gtFine/ and leftImg8bit/ must come from the same release")
    return sorted(f"leftImg8bit/{split}/{images[s]}\tgtFine/{split}/{labels[s]}" for s in images)


def make_lists(data_dir, list_dir=DEFAULT_LIST_DIR, splits=SPLITS, force=False, log=print):
    """Write ``<list_dir>/<split>.lst`` for each split whose file is missing (all with ``force``).

    Existing lists are kept as they are. A count other than the official one warns.
    Returns {split: path}.
    """
    paths = {}
    for split in splits:
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        path = os.path.join(list_dir, f"{split}.lst")
        paths[split] = path
        if os.path.isfile(path) and not force:
            log(f"[make-lists] keeping the existing {path}")
            continue
        lines = split_lines(data_dir, split)
        if len(lines) != OFFICIAL_COUNTS[split]:
            warnings.warn(f"Cityscapes {split}: {len(lines)} images in {data_dir}, the official "
                          f"split has {OFFICIAL_COUNTS[split]}; results will not be comparable with "
                          "the published ones", stacklevel=2)
        os.makedirs(list_dir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write("".join(line + "\n" for line in lines))
        os.replace(tmp, path)
        log(f"[make-lists] wrote {path}: {len(lines)} {split} images")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dataset.cityscapes",
                                     description="Cityscapes tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-lists", help="write {train,val,test}.lst from the official layout")
    m.add_argument("--data-dir", default="./dataset/cityscapes",
                   help="the Cityscapes root (holds leftImg8bit/ and gtFine/)")
    m.add_argument("--list-dir", default=DEFAULT_LIST_DIR, help="where the .lst files go")
    m.add_argument("--splits", default=",".join(SPLITS), help="comma-separated, e.g. train,val")
    m.add_argument("--force", action="store_true", help="rewrite lists that already exist")
    args = parser.parse_args(argv)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            make_lists(args.data_dir, args.list_dir, splits, force=args.force)
    except (DatasetError, MissingFileError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"WARNING: {warning.message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
