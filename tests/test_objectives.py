"""The built-in objectives' values, and how a config names one."""

import jax.numpy as jnp
import numpy as np
import pytest

from smallbatch_jax.objectives import (CLASSIFICATION, REGRESSION, Objective, accuracy,
                                       objective_named, squared_error)


def test_squared_error_per_example_for_scalar_and_vector_targets():
    outputs = jnp.array([[1.0], [2.0], [0.5]])  # a model's (batch, 1) outputs
    np.testing.assert_allclose(squared_error(outputs, jnp.array([0.0, 2.0, 1.5])),
                               [1.0, 0.0, 1.0])
    vectors = jnp.array([[1.0, 1.0], [0.0, 3.0]])
    np.testing.assert_allclose(squared_error(vectors, jnp.array([[0.0, 0.0], [0.0, 1.0]])),
                               [2.0, 4.0])


def test_accuracy_and_the_directions():
    logits = jnp.array([[0.1, 2.0], [3.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(accuracy(logits, jnp.array([1, 1, 1])), [1.0, 0.0, 1.0])
    assert CLASSIFICATION.higher_is_better and CLASSIFICATION.labels == "classes"
    assert not REGRESSION.higher_is_better and REGRESSION.labels == "targets"
    assert objective_named("regression") is REGRESSION
    assert objective_named("smallbatch_jax.objectives:CLASSIFICATION") is CLASSIFICATION


def test_a_bad_objective_says_what_is_wrong():
    with pytest.raises(ValueError, match="labels='ids'"):
        Objective(squared_error, squared_error, labels="ids")
    with pytest.raises(ValueError, match=r"allowed: \['classification', 'regression'\]"):
        objective_named("mse")
    with pytest.raises(ValueError, match="cannot import 'nowhere'"):
        objective_named("nowhere:THING")
    with pytest.raises(ValueError, match="has no attribute 'NOPE'"):
        objective_named("smallbatch_jax.objectives:NOPE")
