"""What the paper states: the numbers our tables sit beside, and NA for the ones we lack."""

from __future__ import annotations

from typing import Any

NA = "n/a (not in our copy)"

# What our copy of Dogan, Tasci, Tuncer 2023 states. Anything absent here is shown as NA.
PAPER: dict[str, Any] = {
    "citation": "Dogan, Tasci, Tuncer 2023",
    "n_images": 3256,
    "cnn_split": "70/30",
    "cnn_split_accuracy": 99.80,
    "n_features": 1000,
    "n_selected": 521,
    "mrmr_threshold": 0.25,
    "table2": {"SVM": {"all": 99.6, "selected": 99.94}},
    "table4": [
        ("Tusar et al. 2022", "MobileNetV2", 97.42),
        ("Basymeleh et al. 2022", "VGG16", 97.50),
        ("Dogan, Tasci, Tuncer 2023 (the paper)", "DarkNet-19 + mRMR + SVM", 99.94),
    ],
}
TABLE2_ROWS = ("SVM", "ANN", "KNN", "Naive Bayes")
FEATURE_SET_LABEL = {"all": "all features", "selected": "selected features"}
