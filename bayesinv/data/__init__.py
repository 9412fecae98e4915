"""Procedural phantoms and small image sets for training, calibration and out-of-distribution checks."""

from bayesinv.data.images import SKIMAGE_IMAGES, load_image, load_images
from bayesinv.data.phantoms import (SPLIT_SEEDS, PhantomBatch, ellipse_phantoms, insert_lesions, phantom_dataset,
                                    shepp_logan_phantoms)

__all__ = ["SPLIT_SEEDS", "PhantomBatch", "ellipse_phantoms", "insert_lesions", "phantom_dataset",
           "shepp_logan_phantoms", "SKIMAGE_IMAGES", "load_image", "load_images"]
