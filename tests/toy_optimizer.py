"""A pytest plugin that adds a small optimizer the way CONTRIBUTING.md says to add one, for
`tests/test_registry.py`: sign descent (`w -= lr * sign(g)`, Bernstein et al. 2018), a class,
its entry in the public registry, its reference and its cases. Loaded with `-p
tests.toy_optimizer` before collection, so that every generic test sees it."""

from __future__ import annotations

import keras
import numpy as np
from hypothesis import strategies as st
from keras import ops

import keras_adaptive
from tests import cases


@keras.saving.register_keras_serializable(package="keras_adaptive")
class SignDescent(keras_adaptive.AdaptiveOptimizer):
    """Sign descent.

    Update rule:

        (1) w = w - alpha * sign(g)
    """

    def __init__(self, learning_rate=0.01, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = self.compute_dtype(variable)
        self.assign_sub(variable, ops.cast(learning_rate, dtype) * ops.sign(ops.cast(gradient, dtype)))  # (1)


def sign_descent_step(w, g, state, t, lr):
    """The float64 reference of `SignDescent`: written from its rule, nothing shared."""
    return w - lr * np.sign(g), dict(state)


def sign_descent_effective_lr(w, state, t, lr):
    return np.full_like(w, lr)


def pytest_configure(config):
    keras_adaptive.OPTIMIZERS["sign_descent"] = SignDescent  # the public registry
    keras_adaptive.SignDescent = SignDescent  # and the package (its `__init__.py` and `__all__`)
    case = cases.Case("sign-descent", SignDescent, dict(learning_rate=0.01), sign_descent_step)
    cases.CASES.append(case)
    cases.CASE_IDS.append(case.id)
    cases.BY_ID[case.id] = case
    cases.BY_CLASS[SignDescent] = cases.ClassCases(
        "sign-descent",
        dict(learning_rate=1e-3),
        dict(learning_rate=0.01),
        st.fixed_dictionaries(dict(learning_rate=st.floats(1e-4, 1.0))),
    )
    cases.REPRESENTATIVES.append(case.id)
    from tests import reference

    reference.sign_descent_step = sign_descent_step
    reference.sign_descent_effective_lr = sign_descent_effective_lr
    reference.EFFECTIVE_LR[sign_descent_step] = sign_descent_effective_lr
