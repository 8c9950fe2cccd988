"""Where the calibration data is: a dataset.yaml, a split folder of data/organized, or images/ + labels/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..types import GroundTruth


@dataclass
class LabelledImages:
    images: list[Path]
    labels: list[Path]
    class_names: list[str] | None  # from a dataset.yaml when one is found
    source: Path


def _find_dataset_yaml(folder: Path) -> Path | None:
    for parent in [folder, *folder.parents][:4]:
        if (parent / "dataset.yaml").is_file():
            return parent / "dataset.yaml"
    return None


def resolve_calibration_data(path: str | Path, split: str = "val") -> LabelledImages:
    """A dataset.yaml (its `split`), a split folder of data/organized (`organized/val` or
    `organized/images/val`), or a folder with images/ and labels/; labels beside the images."""
    from ..data.dataset import label_path_for_image, load_dataset_yaml, split_images
    from ..fsio import list_images

    path = Path(path)
    names = None
    if path.suffix.lower() in (".yaml", ".yml"):
        spec = load_dataset_yaml(path)
        images, names = split_images(spec, split), spec.names
    else:
        folder = path
        if not folder.is_dir() and (folder.parent / "images" / folder.name).is_dir():
            folder = folder.parent / "images" / folder.name  # data/organized/val -> data/organized/images/val
        elif folder.is_dir() and (folder / "images").is_dir():
            folder = folder / "images"
        if not folder.is_dir():
            raise DataError(
                "calibration data not found (expected a dataset.yaml or a folder of images)", file=str(path)
            )
        images = list_images(folder, recursive=True)
        yml = _find_dataset_yaml(folder)
        if yml is not None:
            names = load_dataset_yaml(yml).names
    if not images:
        raise DataError("no images in the calibration data", file=str(path))
    labels = []
    for image in images:
        candidate = label_path_for_image(image)
        beside = image.with_suffix(".txt")
        labels.append(candidate if candidate.is_file() or not beside.is_file() else beside)
    if not any(p.is_file() for p in labels):
        raise DataError(
            f"calibration data has no labels: none of the {len(images)} images has a label file "
            f"(looked for e.g. {labels[0]}); calibration needs labelled images",
            file=str(path),
        )
    return LabelledImages(images, labels, names, path)


def labelled_batches(data: LabelledImages, num_classes: int, batch: int) -> Iterator[tuple[list, list[GroundTruth]]]:
    """(BGR images, their ground truth) `batch` images at a time, in the data's order."""
    import cv2

    from ..data.dataset import read_ground_truth

    for start in range(0, len(data.images), batch):
        images, truth = [], []
        for path, label in zip(data.images[start:start + batch], data.labels[start:start + batch]):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise DataError("cannot read image", file=str(path))
            images.append(image)
            truth.append(read_ground_truth(path, label, num_classes=num_classes, size=image.shape[:2]))
        yield images, truth
