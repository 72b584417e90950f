"""The photo case's images: JPEG crops of scikit-image's photographs, one class each."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from storebench import dataset, imagefolder, photos
from storebench.config import check, normalize
from storebench.errors import StorebenchError

from conftest import ROOT

SHIPPED = yaml.safe_load((ROOT / "config.yaml").read_text())

needs_skimage = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None, reason="the photos extra is not installed"
)


@needs_skimage
def test_crops_are_jpeg_photographs_of_one_size_in_a_folder_per_photo(tmp_path: Path) -> None:
    made = photos.make(tmp_path / "photos", 20, (64, 48), seed=1)
    assert made["photos"] == 20 and made["classes"] == len(photos.SOURCES)
    classes, files = imagefolder.scan(tmp_path / "photos")
    assert classes == sorted(photos.SOURCES) and len(files) == 20
    for path, _ in files:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.size == (48, 64) and image.mode == "RGB"
    # the same seed, the same crops; another seed, others; no staging folder left
    again = photos.make(tmp_path / "again", 20, (64, 48), seed=1)
    assert again == made
    first = sorted((tmp_path / "photos").rglob("*.jpg"))
    second = sorted((tmp_path / "again").rglob("*.jpg"))
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    photos.make(tmp_path / "other", 20, (64, 48), seed=2)
    third = sorted((tmp_path / "other").rglob("*.jpg"))
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in third]
    assert not list(tmp_path.glob(".*partial"))
    # the dataset of the folder: 20 images of 64 x 48, labels the photographs
    out = tmp_path / "dataset"
    out.mkdir()
    dataset.build("imagefolder", tmp_path / "photos", 20, out / "images.npy", out / "labels.npy")
    images = np.load(out / "images.npy")
    assert images.shape == (20, 64, 48, 3) and images.std() > 10  # photographs, not flat


def test_without_scikit_image_the_photo_case_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StorebenchError, match=r"scikit-image, which is not installed; pip"):
        photos.data_dir()
    config = {**SHIPPED, "dataset": {"kind": "photos"}}
    normalize(config)
    assert config["dataset"]["size"] == [256, 256]  # photos default to 256 x 256
    with pytest.raises(StorebenchError, match=r"^dataset.kind photos: the photographs"):
        check(config)


@needs_skimage
def test_a_training_crop_larger_than_the_photos_is_refused_before_any_job() -> None:
    config = {**SHIPPED, "dataset": {"kind": "photos", "size": 128}}
    config["training"] = {**SHIPPED["training"], "crop": 224}
    normalize(config)
    with pytest.raises(StorebenchError, match=r"^training.crop: 224 px is larger than the images"):
        check(config)
