"""What `load_study` tells a user who gives it the wrong thing: the formats it reads, the flags by name."""

from __future__ import annotations

import pytest
from PIL import Image

from qilin_med_vl.imaging import ImageRejected, load_study
from qilin_med_vl.imaging.reasons import IMAGE_UNREADABLE, SLICE_OUT_OF_RANGE


def test_a_file_that_is_no_image_names_the_accepted_formats(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture", encoding="utf-8")
    with pytest.raises(ImageRejected) as caught:
        load_study(path)
    assert caught.value.reason == IMAGE_UNREADABLE
    assert str(path) in str(caught.value) and "accepted: PNG, JPEG" in str(caught.value)
    assert "DICOM" in str(caught.value) and "NIfTI" in str(caught.value)


def test_a_slice_of_a_photo_names_the_flag(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (40, 40)).save(path)
    with pytest.raises(ImageRejected) as caught:
        load_study(path, slice_index=3)
    assert caught.value.reason == SLICE_OUT_OF_RANGE
    assert "a slice (--slice) was asked for" in str(caught.value)
    assert "slice_index" not in str(caught.value)
