# Port of OCNet.pytorch dataset/__init__.py (679a45b). MIT licence, after openseg-group/OCNet.pytorch.
"""Dataset registry: ``get_segmentation_dataset(name, **kw)`` is the only place a name is resolved."""
from .cityscapes import CitySegmentationTest, CitySegmentationTrain

DATASETS = {
    "cityscapes_train": CitySegmentationTrain,
    "cityscapes_test": CitySegmentationTest,
}

# --- OCRNet recipe datasets (dataset/ade20k.py, voc.py, cityscapes_ocr.py) ---
from .ade20k import ADE20KTrain, ADE20KVal  # noqa: E402
from .cityscapes_ocr import CityscapesOCRTrain, CityscapesOCRVal  # noqa: E402
from .voc import VOCTrain, VOCVal  # noqa: E402

DATASETS.update({
    "ade20k_train": ADE20KTrain, "ade20k_val": ADE20KVal,
    "voc_train": VOCTrain, "voc_val": VOCVal,
    "cityscapes_ocr_train": CityscapesOCRTrain, "cityscapes_ocr_val": CityscapesOCRVal,
})
# --- end OCRNet recipe datasets ---


def get_segmentation_dataset(name, **kwargs):
    """Build the dataset registered as ``name`` (see ``DATASETS``) with ``kwargs``."""
    try:
        cls = DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r} (--dataset); valid names: "
                       f"{', '.join(sorted(DATASETS))}") from None
    return cls(**kwargs)
