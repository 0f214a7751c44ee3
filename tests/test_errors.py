"""costtune's errors cross process boundaries intact: a forecast's worker process raising one showed the user
"a worker process died" instead of the error, because a SpecError could not be rebuilt from its pickle."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from costtune.errors import CapExceeded, InputError, LaunchLimit, SpecError, StoreUnavailable, StudyNotFound


def _raise_spec_error(value: int) -> None:
    raise SpecError("budget.usd", "must be more than $0", value)


@pytest.mark.parametrize("error", [
    SpecError("space.lr.low", "must be below high", 3), SpecError("budget", "is required"),
    InputError("--regions: no region given"), StudyNotFound("no study 'x'"),
    StoreUnavailable("cannot open", label="--db"), CapExceeded("study:1", 10, 5, 3, 4), LaunchLimit("ct-1", 2, 2),
], ids=lambda e: type(e).__name__)
def test_every_kind_of_error_survives_a_pickle_round_trip(error: Exception) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert {k: v for k, v in vars(back).items() if k != "value" or isinstance(v, int)} == \
        {k: v for k, v in vars(error).items() if k != "value" or isinstance(v, int)}


def test_an_error_raised_in_a_worker_process_reaches_the_parent_as_itself() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool, \
            pytest.raises(SpecError, match=r"^budget.usd: must be more than \$0, got -1$") as info:
        pool.submit(_raise_spec_error, -1).result()
    assert info.value.path == "budget.usd" and info.value.value == -1
