"""Keras' own optimizer tests, run against our classes on every backend.

The test bodies are Keras' (`keras/src/optimizers/*_test.py` of the installed Keras),
loaded by `tests/keras_suite.py` with the Keras classes they build replaced by ours,
configured to Keras' math where an argument allows. What is left out, and why, is
`LEFT_OUT` below: a convention of ours that differs from Keras' on purpose, Keras' error
wording, a Keras-only internal, or a test of an optimizer outside this family. Keras' own
backend conditions (a `skipif` that is true here, a `skipTest` for this backend) deselect
a test too, so that a skip in the summary keeps meaning something. Every test that runs
must build one of our optimizers (`_builds_ours`), and every name in `LEFT_OUT` must name a
collected test (`test_left_out_names_exist`), so this list cannot go stale silently.
"""

import pytest

from tests import keras_suite

MODULES = [
    "optimizer_test",
    "loss_scale_optimizer_test",
    "optimizer_sparse_test",
    "sgd_test",
    "rmsprop_test",
    "adam_test",
    "adamw_test",
    "adagrad_test",
    "adadelta_test",
    "nadam_test",
]


def _collect(names):
    classes = {}
    for name in names:
        module = keras_suite.load(name)
        for attribute, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == module.__name__ and attribute.endswith("Test"):
                classes[attribute] = value
    return classes


globals().update(_collect(MODULES))

_NOT_OURS = "a Keras optimizer outside this family ({}), not ours"
_DENSE = (
    "our optimizers apply a sparse gradient as a dense one (`keras_adaptive.backend.ops.dense`: the same numbers, which "
    "test_sparse_correctness checks, without sparse writes to the weights or the state)"
)
# Keras' parameterized tests over optimizer names, by Keras' index: 6 adamax, 7 lion, 9 ftrl, 10 adafactor.
_BY_NAME = {6: "Adamax", 7: "Lion", 9: "Ftrl", 10: "Adafactor"}

LEFT_OUT = {
    **{
        f"OptimizerTest::test_{test}{i}": _NOT_OURS.format(name)
        for test in ("gradient_accumulation_with_weigth_decay", "pickleable_optimizers")
        for i, name in _BY_NAME.items()
    },
    **{
        f"OptimizerSparseTest::test_sparse_{kind}_{case}": _NOT_OURS.format(name)
        for kind in ("gradients", "correctness")
        for case, name in (
            ("adafactor", "Adafactor"),
            ("adamax", "Adamax"),
            ("ftrl", "Ftrl"),
            ("lion", "Lion"),
            ("scatter_update", "the test's own ScatterUpdateOptimizer"),
        )
    },
    **{
        f"OptimizerSparseTest::test_sparse_gradients_{case}": _DENSE
        for case in ("adadelta", "adagrad", "loss_scale_optimizer_sgd", "rmsprop", "sgd")
    },
    "LossScaleOptimizerTest::test_deserialization_backwards_compatibility": _NOT_OURS.format(
        "a Keras 2 config naming Keras' SGD"
    ),
    "SGDTest::test_correctness_with_golden": "convention: `SGD(nesterov=True)` without momentum is refused (as torch.optim does); Keras ignores nesterov",
    "SGDTest::test_invalid_momentum": "Keras' error wording (ours: 'Argument `momentum` must be in [0, 1), got ...'; "
    "tests/test_validation.py)",
    "AdamWTest::test_weight_decay_is_none": "Keras' error wording (ours: tests/test_validation.py)",
    "AdamWTest::test_correctness_with_golden": "convention: Keras' Adam family uses the epsilon-hat form, which differs from Kingma and Ba's at epsilon=2",
    "NadamTest::test_build_with_empty_var_list": "reads Keras' private `_u_product` (ours is `_mu_product`)",
}

# Keras' `_skip_test_for_stateless`: LossScaleOptimizer has no stateless_apply on TensorFlow,
# and on JAX it must use it.
_LOSS_SCALE = [
    "finite_step",
    "finite_step_with_inner_loss_scale",
    "infinite_step",
    "finite_step_with_overwrite",
    "downscaling",
    "upscaling",
    "iterations_update",
]
BACKEND_LEFT_OUT = {
    "tensorflow": {
        f"LossScaleOptimizerTest::test_{t}_stateless": "Keras skips it on TensorFlow (no stateless_apply)"
        for t in _LOSS_SCALE
    },
    "jax": {
        **{
            f"LossScaleOptimizerTest::test_{t}_stateful": "Keras skips it on JAX (stateless_apply only)"
            for t in _LOSS_SCALE
        },
        "LossScaleOptimizerTest::test_apply_with_no_vars": "Keras skips it on JAX (stateless_apply only)",
    },
}


def test_left_out_names_exist():
    """Each left-out name is a test Keras still has (a rename in Keras would otherwise run it unnoticed)."""
    names = set()
    for name, cls in _collect(MODULES).items():
        names.update(f"{name}::{method}" for method in dir(cls) if method.startswith("test"))
    listed = set(LEFT_OUT).union(*BACKEND_LEFT_OUT.values())
    assert sorted(listed - names) == []


@pytest.fixture(autouse=True)
def _builds_ours(request):
    keras_suite.BUILT.clear()
    yield
    report = request.node.stash.get(keras_suite.CALL_REPORT, None)
    if report is not None and report.passed and request.node.cls is not None:
        assert keras_suite.BUILT, f"{request.node.nodeid} built none of our optimizers: it tested Keras' own"
