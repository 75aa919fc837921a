"""dataset/labels.py: the id <-> trainId tables against the original's hand-written dicts."""
import numpy as np
import pytest

from dataset import labels as L

I = 255
# The original's dict (its dataset/cityscapes.py and eval.py), copied by hand.
ORIGINAL_ID_TO_TRAINID = {-1: I, 0: I, 1: I, 2: I, 3: I, 4: I, 5: I, 6: I, 7: 0, 8: 1, 9: I, 10: I,
                          11: 2, 12: 3, 13: 4, 14: I, 15: I, 16: I, 17: 5, 18: I, 19: 6, 20: 7,
                          21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 29: I,
                          30: I, 31: 16, 32: 17, 33: 18}
# The original generate_submit.py's inverse for the 19 classes.
ORIGINAL_TRAINID_TO_ID = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]


def test_table_equals_original_dict():
    assert L.ID_TO_TRAINID == ORIGINAL_ID_TO_TRAINID
    assert [L.TRAINID_TO_ID[t] for t in range(19)] == ORIGINAL_TRAINID_TO_ID


def test_lut_maps_every_id_like_the_dict():
    ids = np.arange(34, dtype=np.uint8).reshape(2, 17)
    expected = np.vectorize(ORIGINAL_ID_TO_TRAINID.get)(ids)
    out = L.id_to_train_id(ids)
    assert out.dtype == np.uint8 and out.shape == (2, 17)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("bad", [34, 255, 200])
def test_non_cityscapes_ids_raise_naming_the_file(bad):
    label = np.array([[7, bad]], dtype=np.uint8)
    with pytest.raises(ValueError, match=rf"gt/x_labelIds.png.*{bad}"):
        L.id_to_train_id(label, "gt/x_labelIds.png")


def test_negative_and_float_labels_raise():
    with pytest.raises(ValueError, match="-1"):
        L.id_to_train_id(np.array([[-1, 7]]), "f.png")
    with pytest.raises(ValueError, match="integers"):
        L.id_to_train_id(np.zeros((2, 2), np.float32), "f.png")


def test_train_to_label_id_and_round_trip():
    pred = np.arange(19, dtype=np.uint8)
    np.testing.assert_array_equal(L.train_id_to_label_id(pred), ORIGINAL_TRAINID_TO_ID)
    assert L.train_id_to_label_id(pred).dtype == np.uint8
    np.testing.assert_array_equal(L.id_to_train_id(L.train_id_to_label_id(pred)), pred)
    # NumPy 2: the original's `uint8[mask] = -1` overflowed; ignore maps to 0 (unlabeled) here.
    np.testing.assert_array_equal(L.train_id_to_label_id(np.array([255, 0], np.uint8)), [0, 7])
    with pytest.raises(ValueError, match="19"):
        L.train_id_to_label_id(np.array([19], np.uint8))


def test_class_names_and_colours():
    assert len(L.CLASS_NAMES) == 19 and L.CLASS_NAMES[0] == "road" and L.CLASS_NAMES[-1] == "bicycle"
    assert L.CLASS_NAMES[10] == "sky" and L.CLASS_COLORS[10] == (70, 130, 180)
    assert L.CLASS_COLORS[0] == (128, 64, 128)
