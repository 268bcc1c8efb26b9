"""Does a trained CNN follow the colour or the cells? Recolour each test image like each class.

    python benchmarks/experiments/colour_swap.py DATA RUN [RUN ...] [--out FILE.json]

A table over several runs of what `blastscan robustness RUN` reports for one
(`robustness.run_colour_swap`): for every class k, each held-out test image of RUN is given
the colour of class k's training images (`robustness.class_colours`, Reinhard et al. 2001 in
RGB: each channel shifted and scaled so the image's mean and s.d. become the mean over class
k's training images of theirs); the cells stay where they are. A network that reads cells
keeps its answer whatever k is; one that reads colour moves to k. Prints, per run: clean
accuracy; accuracy with every image in its own class's colour; accuracy in another class's
colour (all image x other-class pairs); and how often the answer becomes that other class
("follows"; chance-level following would be about 1/3 of the errors). Only the run's
training images set the colours. (The table in docs/results.md came from this script's
first version, numpy arithmetic in place of `data.transfer_colour`'s torch: the same formula.)
"""

import argparse
import json
from pathlib import Path

from blastscan.robustness import run_colour_swap


def swap(run: Path, data: Path) -> dict:
    result = run_colour_swap(run, data)
    return {
        "run": str(run),
        "n_test": result["n"],
        "clean": result["clean"]["value"],
        "own_class_colour": result["own_colour"]["value"],
        "other_class_colour": result["other_colour"]["value"],
        "follows_the_colour": result["follows_the_colour"]["value"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    print(
        "| run | clean | in its own class's colour | in another class's colour | follows the colour |"
    )
    print("|---|---:|---:|---:|---:|")
    for run in args.runs:
        r = swap(run, args.data)
        rows.append(r)
        print(
            f"| {run} | {r['clean']:.1%} | {r['own_class_colour']:.1%} | "
            f"{r['other_class_colour']:.1%} | {r['follows_the_colour']:.1%} |",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
