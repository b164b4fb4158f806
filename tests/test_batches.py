"""keras_adaptive.batches (a model's data read once into NumPy batches) and
keras_adaptive.user_code ('module:function' loading and its inverse)."""

import keras
import numpy as np
import pytest

from keras_adaptive import user_code
from keras_adaptive.batches import Batches, is_arrays
from keras_adaptive_gui import tasks


def numbered(n: int):
    """x holds each sample's own index, so a batch shows which samples it took."""
    x = np.arange(n, dtype="float32")[:, None] * np.ones((1, 2), "float32")
    return x, np.arange(n)


def test_arrays_follow_the_pages_batch_order():
    x, y = numbered(10)
    batches = Batches((x, y), epochs=3, steps_per_epoch=4, batch_size=3, seed=7)
    # The page's tasks draw their batches with gui/tasks.batch_order: the same order, written apart.
    order = tasks.batch_order(10, 3, 4, 3, 7)
    for e in range(3):
        for b in range(4):
            bx, by = batches.epochs[e][b]
            np.testing.assert_array_equal(by, order[e, b])
            np.testing.assert_array_equal(bx[:, 0], order[e, b])


def test_arrays_one_pass_per_epoch_ends_with_a_smaller_batch():
    x, y = numbered(10)
    batches = Batches((x, y), epochs=2, batch_size=4, seed=0)
    assert batches.steps_per_epoch == 3
    for epoch in batches.epochs:
        assert [len(by) for _, by in epoch] == [4, 4, 2]
        assert sorted(np.concatenate([by for _, by in epoch]).tolist()) == list(range(10))
    assert not np.array_equal(batches.epochs[0][0][1], batches.epochs[1][0][1])  # reshuffled
    again = Batches((x, y), epochs=2, batch_size=4, seed=0)
    np.testing.assert_array_equal(again.epochs[1][2][1], batches.epochs[1][2][1])
    other = Batches((x, y), epochs=1, batch_size=4, seed=1)
    assert not np.array_equal(other.epochs[0][0][1], batches.epochs[0][0][1])


def test_several_inputs_as_a_dict_or_a_list():
    x, y = numbered(6)
    by_dict = Batches(({"a": x, "b": x[:, :1]}, y), batch_size=3, seed=0).epochs[0][0]
    np.testing.assert_array_equal(by_dict[0]["a"][:, 0], by_dict[1])
    np.testing.assert_array_equal(by_dict[0]["b"][:, 0], by_dict[1])
    by_list = Batches(([x, x[:, :1]], y), batch_size=3, seed=0).epochs[0][0]
    np.testing.assert_array_equal(by_list[0][1][:, 0], by_list[1])


def test_a_list_of_two_batches_is_not_arrays():
    x, y = numbered(4)
    two = [(x[:2], y[:2]), (x[2:], y[2:])]
    assert not is_arrays(two) and is_arrays((x, y)) and is_arrays(([x, x], y))
    batches = Batches(two, epochs=2)
    assert batches.steps_per_epoch == 2
    np.testing.assert_array_equal(batches.epochs[1][1][1], [2, 3])  # each epoch from its start


def test_a_generator_is_read_once_in_its_order():
    x, y = numbered(12)

    def generate():
        for i in range(0, 12, 2):
            yield x[i : i + 2], y[i : i + 2]

    with pytest.raises(ValueError, match="`steps_per_epoch` is needed with 2 epochs"):
        Batches(generate(), epochs=2)
    batches = Batches(generate(), epochs=2, steps_per_epoch=3)
    assert [by.tolist() for _, by in batches] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    with pytest.raises(ValueError, match="ran out of batches in epoch 2: got 2 of steps_per_epoch=4"):
        Batches(generate(), epochs=2, steps_per_epoch=4)


def test_a_tf_dataset_is_read_each_epoch_from_its_start_then_fixed():
    import tensorflow as tf

    x, y = numbered(8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(8, seed=1, reshuffle_each_iteration=True).batch(4)
    batches = Batches(dataset, epochs=3)
    assert batches.steps_per_epoch == 2
    for epoch in batches.epochs:
        assert sorted(np.concatenate([by for _, by in epoch]).tolist()) == list(range(8))
    first = [by.tolist() for _, by in batches]
    assert first == [by.tolist() for _, by in batches]  # read once: the same batches every time


def test_a_pydataset_gets_its_epoch_ends():
    x, y = numbered(6)

    class Shifting(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.shift = 0

        def __len__(self):
            return 3

        def __getitem__(self, i):
            j = (2 * i + self.shift) % 6
            return x[j : j + 2], y[j : j + 2]

        def on_epoch_end(self):
            self.shift += 2

    batches = Batches(Shifting(), epochs=2)
    assert [by.tolist() for _, by in batches.epochs[0]] == [[0, 1], [2, 3], [4, 5]]
    assert [by.tolist() for _, by in batches.epochs[1]] == [[2, 3], [4, 5], [0, 1]]


@pytest.mark.parametrize(
    "data, kwargs, message",
    [
        ((np.zeros((4, 2)), np.zeros(3)), {}, "x has 4 samples but y has 3"),
        ((np.zeros((0, 2)), np.zeros(0)), {}, "has no samples"),
        ((np.zeros((4, 2)), np.zeros(4)), {"epochs": 0}, "`epochs` must be a positive integer, got 0"),
        ((np.zeros((4, 2)), np.zeros(4)), {"steps_per_epoch": -1}, "`steps_per_epoch` must be a positive integer"),
        ((np.zeros((4, 2)), np.zeros(4)), {"batch_size": 0}, "`batch_size` must be a positive integer, got 0"),
        ([np.zeros(2), np.zeros(2), np.zeros(2)], {}, "must give \\(x, y\\) batches, got a ndarray"),
        (42, {}, "must be NumPy arrays \\(x, y\\), a tf.data.Dataset"),
    ],
)
def test_bad_data_names_what_is_wrong(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Batches(data, **kwargs)


# --- user_code -------------------------------------------------------------------------


def helper():
    return 1


def test_load_by_module_or_file(tmp_path, monkeypatch):
    (tmp_path / "own_code_mod.py").write_text("def build():\n    return 'built'\n\nVALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert user_code.load("own_code_mod:build", "--model")() == "built"
    assert user_code.load(f"{tmp_path / 'own_code_mod.py'}:build", "--model")() == "built"
    assert user_code.load("tests.test_batches:helper", "x") is helper


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_colon", "must name a function as 'module:function'"),
        ("a:b:c", "must name a function as 'module:function'"),
        ("no_such_module_abc:f", "cannot import 'no_such_module_abc': ModuleNotFoundError"),
        ("tests.test_batches:missing", "has no attribute 'missing'"),
        ("tests.test_batches:pytest", "'pytest' is not callable"),
        ("/no/such/file.py:f", "cannot import '/no/such/file.py': FileNotFoundError"),
    ],
)
def test_load_names_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        user_code.load(spec, "--model")


def test_spec_of_gives_an_importable_name_or_says_why_not():
    assert user_code.spec_of(helper, "build_model") == "tests.test_batches:helper"
    assert user_code.spec_of("tests.test_batches:helper", "build_model") == "tests.test_batches:helper"

    def nested():
        return 1

    with pytest.raises(ValueError, match="is defined inside a function, so worker processes"):
        user_code.spec_of(nested, "build_model")
    with pytest.raises(ValueError, match="is a lambda"):
        user_code.spec_of(lambda: 1, "build_model")
    nested.__module__ = "__main__"
    nested.__qualname__ = "nested"
    with pytest.raises(ValueError, match="defined in __main__"):
        user_code.spec_of(nested, "build_model")
    with pytest.raises(ValueError, match="must be a function or a 'module:function' string"):
        user_code.spec_of(3, "build_model")
