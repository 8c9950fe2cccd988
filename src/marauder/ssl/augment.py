"""Two-view augmentations for underwater imagery, built from torchvision and lightly's transforms.

Underwater colour depends on depth, turbidity and lighting, so the views get strong hue/saturation
shifts, blur, and a "haze" that blends the image towards a random water colour (what suspended
particles do). The encoder learns to ignore these and keep what identifies an animal.
"""

from __future__ import annotations

import random

import torchvision.transforms as T
from lightly.transforms import GaussianBlur
from lightly.transforms.multi_view_transform import MultiViewTransform
from PIL import Image

from ..config.sections.training import SSLAugmentations

# Typical water tints (RGB): clear blue, green coastal, turbid brown-green.
WATER_COLOURS = ((20, 90, 140), (30, 110, 90), (90, 100, 60))


class RandomHaze:
    """With probability p, blend the image towards a water colour by a random strength."""

    def __init__(self, prob: float, strength: tuple[float, float] = (0.15, 0.5)):
        self.prob, self.strength = prob, strength

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() >= self.prob:
            return img
        colour = random.choice(WATER_COLOURS)
        veil = Image.new("RGB", img.size, colour)
        return Image.blend(img, veil, random.uniform(*self.strength))


def view_transform(aug: SSLAugmentations, imgsz: int, blur_prob: float, solarize_prob: float) -> T.Compose:
    """One view. Tensors stay in [0, 1], as Ultralytics feeds the detector: the backbone must see the
    same input scale in pretraining as in detection (EfficientNet-Lite scales its own input)."""
    hue, grayscale = (0.0, 0.0) if aug.preserve_colour else (aug.hue, aug.grayscale_prob)
    return T.Compose([
        T.RandomResizedCrop(imgsz, scale=(aug.crop_min_scale, 1.0)),
        T.RandomHorizontalFlip(aug.hflip_prob),
        T.RandomVerticalFlip(aug.vflip_prob),
        T.RandomApply([T.ColorJitter(aug.brightness, aug.contrast, aug.saturation, hue)],
                      p=aug.color_jitter_prob),
        RandomHaze(aug.haze_prob),
        T.RandomGrayscale(grayscale),
        GaussianBlur(prob=blur_prob),
        T.RandomSolarize(128, p=solarize_prob),
        T.ToTensor(),
    ])


def two_view_transform(aug: SSLAugmentations, imgsz: int) -> MultiViewTransform:
    """MoCo v3 takes two differently augmented views of each image: the first always blurred, the
    second rarely blurred but sometimes solarized (the asymmetric recipe of BYOL and MoCo v3)."""
    return MultiViewTransform([view_transform(aug, imgsz, aug.blur_prob, 0.0),
                               view_transform(aug, imgsz, aug.blur_prob_second, aug.solarize_prob)])


def eval_transform(imgsz: int) -> T.Compose:
    """No augmentation: what the probe embeds."""
    return T.Compose([T.Resize((imgsz, imgsz)), T.ToTensor()])
