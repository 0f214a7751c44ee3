"""A real training workload: a multi-layer perceptron on scikit-learn's bundled digits data.

Run as a command trial (``python -m costtune.demo.digits --lr 0.01 --hidden 64``): it trains epoch
by epoch, reports validation loss and accuracy after each epoch through ``costtune.report``, and
saves the trained model into the trial's directory.
"""

from __future__ import annotations

import argparse
import os
import pickle
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (adam)")
    parser.add_argument("--hidden", type=int, default=64, help="units in the hidden layer")
    parser.add_argument("--layers", type=int, default=1, help="number of hidden layers")
    parser.add_argument("--activation", default="relu", choices=["relu", "tanh", "logistic"])
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    import costtune

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(y)
    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden,) * args.layers, activation=args.activation, alpha=args.alpha,
        learning_rate_init=args.lr, batch_size=args.batch_size, random_state=args.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(args.epochs):
            model.partial_fit(x_train, y_train, classes=classes)  # one shuffled pass in mini-batches
            proba = model.predict_proba(x_val)
            costtune.report(
                step=epoch,
                val_loss=float(log_loss(y_val, proba, labels=classes)),
                val_accuracy=float(accuracy_score(y_val, classes[proba.argmax(axis=1)])),
            )
    out = os.environ.get("COSTTUNE_TRIAL_DIR")
    if out:
        with open(Path(out) / "model.pkl", "wb") as handle:
            pickle.dump({"scaler": scaler, "model": model}, handle)


if __name__ == "__main__":
    main()
