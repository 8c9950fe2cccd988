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
from lightly.transforms.utils import IMAGENET_NORMALIZE
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


def view_transform(aug: SSLAugmentations, imgsz: int) -> T.Compose:
    return T.Compose([
        T.RandomResizedCrop(imgsz, scale=(aug.crop_min_scale, 1.0)),
        T.RandomHorizontalFlip(aug.hflip_prob),
        T.RandomVerticalFlip(aug.vflip_prob),
        T.RandomApply([T.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)],
                      p=aug.color_jitter_prob),
        RandomHaze(aug.haze_prob),
        T.RandomGrayscale(aug.grayscale_prob),
        GaussianBlur(prob=aug.blur_prob),
        T.ToTensor(),
        T.Normalize(IMAGENET_NORMALIZE["mean"], IMAGENET_NORMALIZE["std"]),
    ])


def two_view_transform(aug: SSLAugmentations, imgsz: int) -> MultiViewTransform:
    """MoCo v3 takes two independently augmented views of each image."""
    t = view_transform(aug, imgsz)
    return MultiViewTransform([t, t])


def eval_transform(imgsz: int) -> T.Compose:
    """No augmentation: what the probe embeds."""
    return T.Compose([
        T.Resize((imgsz, imgsz)), T.ToTensor(),
        T.Normalize(IMAGENET_NORMALIZE["mean"], IMAGENET_NORMALIZE["std"]),
    ])
