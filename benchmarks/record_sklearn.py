"""Record one real scikit-learn sweep for ``costtune.demo.bench_sklearn`` to replay (run once, offline).

An ``MLPClassifier`` on the bundled digits set (1,797 8x8 images, 10 classes; a stratified 75/25
train/validation split, standardised on the training part) is trained with ``partial_fit``, one
epoch per step, for ``STEPS`` epochs, for every configuration of ``bench_sklearn.GRID`` (3 x 4 x 3 x 3 x 3 =
324 configurations). After each epoch the validation log loss and the epoch's CPU seconds
(``time.process_time``, one BLAS/OpenMP thread so CPU time is the work of one core) are stored.
Whatever the environment says, the split, the weight initialisation and the batch order are seeded
by the configuration's index, so only the seconds vary between recordings.

    python benchmarks/record_sklearn.py   # ~3-5 CPU minutes (one thread)

Output: ``costtune/demo/data/sklearn_mlp_digits.json.gz``, a JSON object
``{"grid": {name: [values]}, "order": [names], "steps": STEPS, "meta": {...},
"runs": [{"params": {...}, "loss": [STEPS floats], "seconds": [STEPS floats]}, ...]}``.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

from costtune.demo.bench_sklearn import DATA, GRID, STEPS

OUT = Path(__file__).resolve().parent.parent / "costtune" / "demo" / "data" / DATA


def record(out: Path, steps: int = STEPS) -> dict:
    """Train every grid configuration for ``steps`` epochs; write and return the table."""
    import numpy as np
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_va = scaler.transform(x_tr), scaler.transform(x_va)
    classes = np.unique(y)
    order = list(GRID)
    runs = []
    combos = list(itertools.product(*(GRID[k] for k in order)))
    t_start = time.process_time()
    for i, values in enumerate(combos):
        params = dict(zip(order, values, strict=True))
        model = MLPClassifier(
            hidden_layer_sizes=(params["hidden"],) * params["layers"], learning_rate_init=params["lr"],
            alpha=params["alpha"], batch_size=params["batch"], random_state=i, shuffle=True,
        )
        losses, seconds = [], []
        for _ in range(steps):
            t0 = time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.partial_fit(x_tr, y_tr, classes=classes)
            seconds.append(round(time.process_time() - t0, 5))
            proba = np.clip(model.predict_proba(x_va), 1e-12, 1.0)
            loss = float(log_loss(y_va, proba, labels=classes))
            losses.append(round(min(loss, 30.0), 5))  # a diverged net: capped, still finite
        runs.append({"params": params, "loss": losses, "seconds": seconds})
        print(f"{i + 1}/{len(combos)} {params} final loss {losses[-1]:.4f} "
              f"{sum(seconds):.2f}s", file=sys.stderr, flush=True)
    table = {
        "grid": GRID, "order": order, "steps": steps,
        "meta": {
            "dataset": "sklearn.datasets.load_digits, stratified 75/25 split (random_state=0), standardised",
            "model": "sklearn.neural_network.MLPClassifier (adam), partial_fit = one epoch per step",
            "loss": "validation log loss after each epoch (capped at 30)",
            "seconds": "time.process_time() of each partial_fit call, one thread",
            "sklearn": sklearn.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "total_cpu_seconds": round(time.process_time() - t_start, 1),
        },
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as f:
        json.dump(table, f, separators=(",", ":"))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"epochs per configuration (default {STEPS})")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads
        os.environ.setdefault(var, "1")
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    table = record(args.out, args.steps)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(table['runs'])} configurations, "
          f"{table['meta']['total_cpu_seconds']} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
