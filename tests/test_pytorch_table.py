"""`keras_adaptive.pytorch`: the table of which configuration is which `torch.optim` optimizer,
read both ways. (That its claims hold is `tests/test_peers.py`, which builds torch.optim from it.)"""

import pytest

import keras_adaptive as ka
from tests.cases import CASES

TORCH_CASES = [c for c in CASES if c.torch]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.id for c in TORCH_CASES])
def test_from_torch_gives_back_the_configuration(case):
    name, kwargs = case.torch
    ported = ka.pytorch.from_torch(name, **kwargs)
    assert type(ported) is case.cls
    assert ka.pytorch.torch_equivalent(ported) == case.torch


def test_every_class_has_a_torch_namesake_and_which_configurations_are_it():
    assert set(ka.pytorch.EQUIVALENTS) == set(ka.OPTIMIZERS.values())
    name, kwargs = ka.pytorch.torch_equivalent(ka.Adam())  # Kingma and Ba's Adam, PyTorch's too
    assert name == "Adam" and kwargs["eps"] == 1e-7 and kwargs["betas"] == (0.9, 0.999)
    assert ka.pytorch.torch_equivalent(ka.AdaGrad()) is None  # epsilon inside the root: not PyTorch's
    assert ka.pytorch.torch_equivalent(ka.AdaDelta(momentum=0.9)) is None  # PyTorch's has no momentum
    assert ka.pytorch.torch_equivalent(ka.Adam(bias_correction=False)) is None


def test_a_subclass_is_not_read_as_its_parent_unless_asked():
    class Mine(ka.SGD):
        pass

    assert ka.pytorch.torch_equivalent(Mine()) is None
    assert ka.pytorch.torch_equivalent(Mine(), cls=ka.SGD)[0] == "SGD"


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("Adamax", {}, "`name`"),
        ("SGD", {"dampening": 0.5}, "`dampening`"),
        ("Adam", {"weight_decay": 0.01}, "`weight_decay`"),  # torch's Adam decays as an L2 penalty
        ("Adam", {"speed": 2}, "speed"),
    ],
)
def test_from_torch_refuses_what_it_cannot_translate(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ka.pytorch.from_torch(name, **kwargs)
