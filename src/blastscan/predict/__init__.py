"""Predicting on new images with a bundle: files in, table and CSV/JSON out, with an OOD flag.

`inputs` finds and decodes the images, `run` predicts them (sharded under torchrun) and
`results` writes them out. The bundle's heads, `Prediction` and the OOD detector live in
`blastscan.bundle`.
"""

from blastscan.predict.inputs import collect_images, decoded_chunks, folder_images
from blastscan.predict.results import csv_text, json_text, results_table, write_results
from blastscan.predict.run import PredictRun, merge_runs, predict_files, predict_sharded

__all__ = [
    "PredictRun",
    "collect_images",
    "csv_text",
    "decoded_chunks",
    "folder_images",
    "json_text",
    "merge_runs",
    "predict_files",
    "predict_sharded",
    "results_table",
    "write_results",
]
