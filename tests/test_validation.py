"""Invalid arguments raise ValueError naming the argument, the value and what is allowed."""

import keras
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
    (ka.Nadam, {"beta_1": 1.5}, "beta_1", "1.5"),
    (ka.Nadam, {"momentum_decay": -1.0}, "momentum_decay", "-1.0"),
    (ka.Adam, {"clipnorm": -1.0}, "clipnorm", "-1.0"),
    (ka.Adam, {"gradient_accumulation_steps": 1}, "gradient_accumulation_steps", "1"),
    (ka.Adam, {"gradient_accumulation_steps": 2.5}, "gradient_accumulation_steps", "2.5"),
]


@pytest.mark.parametrize("cls,kwargs,argument,shown", BAD, ids=[f"{c.__name__}-{a}-{i}" for i, (c, _, a, _) in enumerate(BAD)])
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
