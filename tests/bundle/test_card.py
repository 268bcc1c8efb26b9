"""The model card: research use, limits, what mRMR kept, and whose held-out accuracy it shows."""

from __future__ import annotations

import json
from pathlib import Path

from bundle_helpers import tiny_bundle

from blastscan.bundle import CARD, MANIFEST, model_card
from blastscan.bundle.heads import _selection_rule
from blastscan.selection import MRMR


def test_model_card_states_research_use_and_limits(built):
    card = (built / CARD).read_text()
    assert "Research use only" in card and "Not a medical device" in card
    assert "## Limits" in card and "synthetic smear-like images" in card
    assert "accuracy 0.2500" in card


def _card_manifest(built: Path, **classical) -> dict:
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["classical"].update(classical)
    return manifest


def test_model_card_says_how_many_features_mrmr_kept_and_by_what_rule(built):
    card = (built / CARD).read_text()  # mRMR(n_features=12) on 1000 features
    assert "on 12 of 1000 deep features kept by mRMR (the top 12 of its ranking)." in card
    assert "mRMR-selected" not in card
    every = _card_manifest(built, n_features=1000, mrmr={"threshold": 0.25}, name="Cubic SVM")
    assert "Cubic SVM on all 1000 deep features (mRMR at threshold 0.25 kept every one)" in (
        model_card(every)
    )
    assert _selection_rule(MRMR(threshold=0.25)) == {"threshold": 0.25}  # what the CLI fits
    some = _card_manifest(built, n_features=521, mrmr={"threshold": 0.25})
    assert "on 521 of 1000 deep features kept by mRMR (threshold 0.25)" in model_card(some)


def test_model_card_says_whose_held_out_accuracy_it_shows(built, tmp_path_factory):
    card = (built / CARD).read_text()
    assert "CNN softmax on the run's 8 held-out test images: accuracy 0.2500" in card
    assert "the deciding KNeighborsClassifier head was not scored on them" in card
    cnn_card = (tiny_bundle(tmp_path_factory.getbasetemp(), classical=False) / CARD).read_text()
    assert "CNN softmax (the deciding head) on the run's 8 held-out test images" in cnn_card
