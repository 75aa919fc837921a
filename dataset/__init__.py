# Port of OCNet.pytorch dataset/__init__.py (679a45b). MIT licence, after openseg-group/OCNet.pytorch.
"""Dataset registry: the one place a ``--dataset`` name is resolved.

``DATASETS`` maps each name to ``"<module>.<class>"`` in this package; a module is imported when one
of its datasets is first used (so ``python -m dataset.cityscapes make-lists`` does not import the
package's modules twice). Every registered class carries the command-line defaults that depend on
the dataset (``dataset_defaults``): list file, input size, class count, ignore label, class names.
"""
import importlib
import inspect

from utils.errors import ConfigError, UnknownNameError

DATASETS = {
    # OCNet (the original's two entries): Caffe-mean normalisation, 769x769 crops
    "cityscapes_train": "cityscapes.CitySegmentationTrain",
    "cityscapes_test": "cityscapes.CitySegmentationTest",
    # OCRNet recipe (sssegmentation pipeline, ImageNet mean/std)
    "cityscapes_ocr_train": "cityscapes_ocr.CityscapesOCRTrain",
    "cityscapes_ocr_val": "cityscapes_ocr.CityscapesOCRVal",
    "cityscapes_ocr_test": "cityscapes_ocr.CityscapesOCRTest",
    "ade20k_train": "ade20k.ADE20KTrain",
    "ade20k_val": "ade20k.ADE20KVal",
    "voc_train": "voc.VOCTrain",
    "voc_val": "voc.VOCVal",
}
MODES = ("train", "eval", "submit")


def dataset_class(name):
    """The class registered as ``name``; UnknownNameError listing the valid names otherwise."""
    try:
        module, cls = DATASETS[name].rsplit(".", 1)
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r} (--dataset); valid names: "
                               f"{', '.join(sorted(DATASETS))}") from None
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def dataset_defaults(name, mode):
    """{'data_list', 'input_size', 'num_classes', 'ignore_label'} of dataset ``name`` for a script
    ``mode`` ('train', 'eval' or 'submit'); ``data_list`` None = the dataset finds its split."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    cls = dataset_class(name)
    sizes = cls.default_input_sizes()
    return {"data_list": cls.DEFAULT_LISTS[mode], "input_size": tuple(sizes[mode]),
            "num_classes": cls.NUM_CLASSES, "ignore_label": cls.IGNORE_LABEL}


def class_names(name):
    """The dataset's class names in train-id order."""
    return tuple(dataset_class(name).CLASS_NAMES)


def accepts(name, argument):
    """Whether dataset ``name`` takes the constructor argument ``argument``."""
    return argument in inspect.signature(dataset_class(name)).parameters


def get_segmentation_dataset(name, **kwargs):
    """Build the dataset registered as ``name`` with ``kwargs``.

    An argument the dataset does not take is a ConfigError naming the ones it does (e.g. training on
    an evaluation set, which takes no ``max_iters``), checked against the signature before the call.
    """
    cls = dataset_class(name)
    params = inspect.signature(cls).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        hint = (" (an evaluation set: train on the matching *_train dataset)"
                if "max_iters" in unknown else "")
        raise ConfigError(f"dataset {name!r} does not take {', '.join(unknown)}{hint}; it takes "
                          f"{', '.join(params)}")
    return cls(**kwargs)
