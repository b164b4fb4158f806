"""Invalid arguments raise ValueError naming the argument, the value and what is allowed."""

import keras
import numpy as np
import pytest

import keras_adaptive as ka

BAD = [
    (ka.SGD, {"learning_rate": 0.0}, "learning_rate", "positive"),
    (ka.SGD, {"learning_rate": -0.1}, "learning_rate", "-0.1"),
    (ka.Adam, {"learning_rate": float("nan")}, "learning_rate", "nan"),
    (ka.Adam, {"learning_rate": "fast"}, "learning_rate", "'fast'"),
    (ka.RMSProp, {"learning_rate": float("inf")}, "learning_rate", "inf"),
    (ka.SGD, {"momentum": 1.0}, "momentum", "[0, 1)"),
    (ka.SGD, {"momentum": -0.5}, "momentum", "-0.5"),
    (ka.SGD, {"nesterov": True}, "nesterov", "momentum"),
    (ka.SGD, {"nesterov": "yes", "momentum": 0.9}, "nesterov", "'yes'"),
    (ka.RMSProp, {"rho": 1.0}, "rho", "[0, 1)"),
    (ka.RMSProp, {"rho": -0.1}, "rho", "-0.1"),
    (ka.RMSProp, {"momentum": 1.5}, "momentum", "1.5"),
    (ka.RMSProp, {"epsilon": -1e-7}, "epsilon", ">= 0"),
    (ka.RMSProp, {"epsilon_placement": "middle"}, "epsilon_placement", "'middle'"),
    (ka.RMSProp, {"centered": 1}, "centered", "True or False"),
    (ka.AdaGrad, {"initial_accumulator_value": -0.1}, "initial_accumulator_value", "-0.1"),
    (ka.AdaGrad, {"epsilon": -1.0}, "epsilon", "-1.0"),
    (ka.AdaGrad, {"epsilon_placement": "Inside"}, "epsilon_placement", "('inside', 'outside')"),
    (ka.AdaDelta, {"rho": 1.2}, "rho", "1.2"),
    (ka.AdaDelta, {"momentum": 1.0}, "momentum", "[0, 1)"),
    (ka.Adam, {"beta_1": 1.0}, "beta_1", "[0, 1)"),
    (ka.Adam, {"beta_2": -0.01}, "beta_2", "-0.01"),
    (ka.Adam, {"beta_2": None}, "beta_2", "None"),
    (ka.Adam, {"epsilon": -1e-8}, "epsilon", ">= 0"),
    (ka.Adam, {"epsilon_placement": "outer"}, "epsilon_placement", "'outer'"),
    (ka.Adam, {"amsgrad": "true"}, "amsgrad", "'true'"),
    (ka.Adam, {"bias_correction": None}, "bias_correction", "None"),
    (ka.AdamW, {"weight_decay": -0.01}, "weight_decay", "-0.01"),
    (ka.AdamW, {"weight_decay": None}, "weight_decay", "None"),  # Adam's "no decay" is not AdamW's
    (ka.Nadam, {"beta_1": 1.5}, "beta_1", "1.5"),
    (ka.Nadam, {"momentum_decay": -1.0}, "momentum_decay", "-1.0"),
    (ka.Adam, {"clipnorm": -1.0}, "clipnorm", "-1.0"),
    (ka.Adam, {"gradient_accumulation_steps": 1}, "gradient_accumulation_steps", "1"),
    (ka.Adam, {"gradient_accumulation_steps": 2.5}, "gradient_accumulation_steps", "2.5"),
]


@pytest.mark.parametrize(
    "cls,kwargs,argument,shown", BAD, ids=[f"{c.__name__}-{a}-{i}" for i, (c, _, a, _) in enumerate(BAD)]
)
def test_bad_argument_raises_value_error_naming_it(cls, kwargs, argument, shown):
    with pytest.raises(ValueError) as error:
        cls(**kwargs)
    message = str(error.value)
    assert f"`{argument}`" in message
    assert shown in message


def test_schedules_and_callables_are_accepted():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert ka.Adam(learning_rate=schedule).get_config()["learning_rate"]["class_name"] == "ExponentialDecay"
    ka.SGD(learning_rate=lambda: 0.01)


def test_registry_get():
    assert isinstance(ka.get("RMSProp", centered=True), ka.RMSProp)
    assert ka.get("rmsprop", centered=True).centered
    assert isinstance(ka.get("keras_adaptive>AdamW"), ka.AdamW)
    assert set(ka.OPTIMIZERS) == {"sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam"}
    with pytest.raises(ValueError, match=r"`name`.*'adamax'") as error:
        ka.get("adamax")
    assert "rmsprop" in str(error.value)
    with pytest.raises(ValueError, match="`rho`"):
        ka.get("rmsprop", rho=2.0)


# --- Bad input at run time: the error names what is wrong, and the optimizer is untouched ---


def _vector_schedule():
    class VectorSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return keras.ops.ones((2,)) * 0.01

    return VectorSchedule()


RUNTIME = [
    (
        "too many gradients",
        lambda opt, vs: opt.apply([keras.ops.ones(v.shape) for v in vs] + [keras.ops.ones(2)], vs),
        "same length",
    ),
    ("too few gradients", lambda opt, vs: opt.apply([keras.ops.ones(vs[0].shape)], vs), "same length"),
    (
        "gradient of the wrong shape",
        lambda opt, vs: opt.apply([keras.ops.ones((3, 2)), keras.ops.ones((4,))], vs),
        "has shape (3, 2)",
    ),
    (
        "a variable the optimizer was not built for",
        lambda opt, vs: opt.apply([keras.ops.ones((2, 3))], [keras.Variable(np.ones((2, 3)))]),
        "Unknown variable",
    ),
    ("negative learning rate set later", lambda opt, vs: setattr(opt, "learning_rate", -0.1), "`learning_rate`"),
    ("string learning rate set later", lambda opt, vs: setattr(opt, "learning_rate", "0.1"), "`learning_rate`"),
]


@pytest.mark.parametrize("what,call,shown", RUNTIME, ids=[r[0] for r in RUNTIME])
def test_bad_input_at_run_time_leaves_the_optimizer_usable(what, call, shown):
    from tests.cases import BY_ID
    from tests.problem import make_problem, run_reference, to_numpy

    case = BY_ID["adam-amsgrad"]
    problem = make_problem(steps=3, shapes=[(2, 3), (4,)])
    optimizer = case.make()
    variables = [keras.Variable(w) for w in problem.weights]
    optimizer.apply([keras.ops.convert_to_tensor(g) for g in problem.grads[0]], variables)
    with pytest.raises(ValueError) as error:
        call(optimizer, variables)
    assert shown in str(error.value)
    for grads in problem.grads[1:]:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    want, _ = run_reference(case, problem)
    for got, w in zip(variables, want):
        np.testing.assert_allclose(to_numpy(got), w, rtol=2e-5, atol=2e-6)
    assert int(to_numpy(optimizer.iterations)) == 3


def test_schedule_returning_a_vector_is_refused():
    optimizer = ka.SGD(learning_rate=_vector_schedule())
    variable = keras.Variable(np.ones(3))
    with pytest.raises(ValueError, match=r"must return a scalar, got shape \(2,\)"):
        optimizer.apply([keras.ops.ones(3)], [variable])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), np.ones(3))


@pytest.mark.parametrize(
    "name,kwargs,shown",
    [
        ("adamax", {}, "'adamax'"),
        ("", {}, "''"),
        (3, {}, "3"),
        ("adam", {"beta_9": 0.1}, "beta_9"),
        ("sgd", {"momentum": "high"}, "`momentum`"),
    ],
)
def test_registry_refuses_unknown_names_and_arguments(name, kwargs, shown):
    with pytest.raises(ValueError) as error:
        ka.get(name, **kwargs)
    assert shown in str(error.value)
