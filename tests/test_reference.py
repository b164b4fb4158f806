"""Every case of the registry against its NumPy float64 reference: weights and every slot, 25 steps."""

import numpy as np
import pytest

from tests.cases import CASE_IDS, CASES
from tests.problem import make_problem, run_keras, run_reference

# float32 arithmetic against float64 over 25 steps.
RTOL, ATOL = 2e-5, 2e-6


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_numpy_reference(case):
    problem = make_problem(steps=25)
    want_w, want_s = run_reference(case, problem)
    got_w, got_s = run_keras(case.make(), problem)
    for i, (got, want) in enumerate(zip(got_w, want_w)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"weight {i}")
        # The optimizer's state is exactly the slots the algorithm needs, no more.
        assert set(got_s[i]) == set(want_s[i])
        for name in want_s[i]:
            np.testing.assert_allclose(got_s[i][name], want_s[i][name], rtol=RTOL, atol=ATOL, err_msg=f"{name} {i}")


@pytest.mark.parametrize(
    "case", [c for c in CASES if "epsilon_placement" in c.cls.__init__.__code__.co_varnames], ids=lambda c: c.id
)
def test_problem_exposes_a_misplaced_epsilon(case):
    """The test data is sensitive: the other placement's reference is far outside the tolerance."""
    problem = make_problem(steps=25)
    placement = case.make().epsilon_placement
    flipped = dict(case.kwargs, epsilon_placement="inside" if placement == "outside" else "outside")
    flipped_case = type(case)(case.id, case.cls, flipped, case.reference)
    want_w, _ = run_reference(case, problem)
    other_w, _ = run_reference(flipped_case, problem)
    assert max(np.max(np.abs(a - b) / (np.abs(b) * RTOL + ATOL)) for a, b in zip(other_w, want_w)) > 100
