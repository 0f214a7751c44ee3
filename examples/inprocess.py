"""Tune a scikit-learn SGD classifier on the digits data in-process, with the Python API.

    python examples/inprocess.py            # then: costtune leaderboard digits-sgd

Each epoch reports validation accuracy; trials are charged at $0.096/hour of wall time.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import costtune

X, y = load_digits(return_X_y=True)
X_TRAIN, X_VAL, Y_TRAIN, Y_VAL = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
SCALER = StandardScaler().fit(X_TRAIN)
X_TRAIN, X_VAL = SCALER.transform(X_TRAIN), SCALER.transform(X_VAL)


def objective(trial: costtune.Trial) -> float:
    alpha = trial.suggest_float("alpha", 1e-6, 1e-1, log=True)
    loss = trial.suggest_categorical("loss", ["hinge", "log_loss", "modified_huber"])
    eta0 = trial.suggest_float("eta0", 1e-4, 1.0, log=True)
    model = SGDClassifier(alpha=alpha, loss=loss, learning_rate="adaptive", eta0=eta0, random_state=0)
    classes = np.unique(Y_TRAIN)
    accuracy = 0.0
    for epoch in range(15):
        model.partial_fit(X_TRAIN, Y_TRAIN, classes=classes)
        accuracy = float(model.score(X_VAL, Y_VAL))
        trial.report(epoch, val_accuracy=accuracy)
        if trial.should_stop():
            raise costtune.StopTrial()
    return accuracy


if __name__ == "__main__":
    study = costtune.create_study("digits-sgd", metric="val_accuracy", mode="max",
                                  sampler={"type": "bayes", "seed": 0}, usd_per_hour="0.096",
                                  load_if_exists=True)
    study.optimize(objective, n_trials=30, n_jobs=2)
    best = study.best_trial
    print(f"best val_accuracy {best.value:.4f} with {best.params}; "
          f"spent ${study.spend_micros() / 1e6:.6f} on {len(study.trials)} trials")
