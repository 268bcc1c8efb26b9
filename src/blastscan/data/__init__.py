"""Smear images: finding, decoding, caching, de-duplicating, splitting and augmenting them.

Every image is decoded once into one uint8 array kept in memory (`cache`); training then
augments tensors on the device (`augment`), never files. Splits never separate duplicates
(`duplicates`) and can group images by patient proxies (`splits`).
"""

from blastscan.data.augment import augment, channel_statistics, rotate_hue, transfer_colour
from blastscan.data.cache import default_cache_dir, load_images
from blastscan.data.coverage import (
    FOREGROUND_LEVEL,
    NEARLY_EMPTY_BELOW,
    coverage_summary,
    dataset_coverage,
    foreground_fraction,
    foreground_fractions,
)
from blastscan.data.duplicates import (
    DUPLICATE_SEARCH_SIZE,
    duplicate_groups,
    exact_duplicate_groups,
    find_duplicate_groups,
    group_summary,
    near_duplicate_pairs,
    thumbnails,
)
from blastscan.data.files import (
    DISPLAY_NAMES,
    IMAGE_EXTENSIONS,
    KAGGLE_VARIANTS,
    Dataset,
    Sample,
    discover_classes,
    image_files,
    resolve_class_root,
    scan_dataset,
    sha256_file,
    summary,
    write_manifest,
)
from blastscan.data.images import load_image_array, open_rgb, to_float_tensor
from blastscan.data.splits import (
    GROUP_STRATEGIES,
    image_index,
    image_key,
    patient_proxy_groups,
    run_split,
    save_split,
    saved_split,
    stratified_group_split,
)
from blastscan.data.synthetic import synthetic_smears

__all__ = [
    "DISPLAY_NAMES", "DUPLICATE_SEARCH_SIZE", "FOREGROUND_LEVEL", "GROUP_STRATEGIES",
    "IMAGE_EXTENSIONS", "KAGGLE_VARIANTS", "NEARLY_EMPTY_BELOW", "Dataset", "Sample", "augment",
    "channel_statistics", "coverage_summary", "dataset_coverage", "default_cache_dir",
    "discover_classes", "duplicate_groups", "exact_duplicate_groups", "find_duplicate_groups",
    "foreground_fraction", "foreground_fractions", "group_summary", "image_files", "image_index",
    "image_key", "load_image_array", "load_images", "near_duplicate_pairs", "open_rgb",
    "patient_proxy_groups", "resolve_class_root", "rotate_hue", "run_split", "save_split",
    "saved_split", "scan_dataset", "sha256_file", "stratified_group_split", "summary",
    "synthetic_smears", "thumbnails", "to_float_tensor", "transfer_colour", "write_manifest",
]  # fmt: skip
