"""Shared fixtures: small real data, so tests compile and run in seconds on a CPU."""

import os

import numpy as np
import pytest

from smallbatch_jax.data import load_digits, make_dataset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10_SUBSET = os.path.join(REPO_ROOT, "..", "shared", "data", "cifar10_subset.npz")


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def tiny_digits(digits):
    """64 training and 40 test digits: a few steps per epoch."""
    return make_dataset("digits", digits.train_images[:64], digits.train_labels[:64],
                        digits.test_images[:40], digits.test_labels[:40], 10)


def write_fake_cifar_npz(path, num_train=24, num_test=10, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path,
             train_images=rng.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8),
             train_labels=rng.integers(0, num_classes, num_train),
             test_images=rng.integers(0, 256, (num_test, 32, 32, 3), dtype=np.uint8),
             test_labels=rng.integers(0, num_classes, num_test))
    return path
