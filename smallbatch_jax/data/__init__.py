"""Data sets: what a run trains and tests on, by name.

- 'digits': scikit-learn's 8×8 digits, embedded (no download; data/digits.py);
- 'cifar10', 'cifar100': from an .npz file, the official python version, or
  tensorflow-datasets (data/cifar.py), chosen by `data_dir`; held in device memory;
- 'imagenet2012': tensorflow-datasets from a manual download, streamed from a host
  pipeline one batch per step (data/imagenet.py);
- 'npz': any .npz file of train_images, train_labels, test_images, test_labels (`data_dir`
  names it), of any input shape: images, flat features or token ids (data/dataset.py).
A user's own arrays or Dataset are passed to the API directly (smallbatch_jax/api.py).

Every data set, held in memory (`Dataset`) or streamed (`StreamedDataset`), tells the rest of
the library the same things (`DatasetLike`): its sizes, its input kind, its label kind,
whether it is streamed. `BUILT_IN` is the registry of the named ones: how each loads, and
what the config checks need to know of it before it is loaded.
"""

import dataclasses
from collections.abc import Callable

from smallbatch_jax.data.cifar import load_cifar
from smallbatch_jax.data.dataset import (IGNORED_LABEL, Dataset, DatasetLike, check_padding,
                                         hold_out, load_npz, looks_channels_first, make_dataset,
                                         model_input_dtype, scored)
from smallbatch_jax.data.digits import load_digits
from smallbatch_jax.data.imagenet import StreamedDataset, load_imagenet


@dataclasses.dataclass(frozen=True)
class BuiltIn:
    """A named data set: `load(data_dir, image_size)`, and what is known before loading."""
    load: Callable[[str, int], DatasetLike]
    num_classes: int | None  # None: read from the data (an .npz file)
    streamed: bool = False  # fed from a host pipeline one batch per step (one data order)


BUILT_IN = {
    "digits": BuiltIn(lambda data_dir, image_size: load_digits(), 10),
    "cifar10": BuiltIn(lambda data_dir, image_size: load_cifar("cifar10", data_dir), 10),
    "cifar100": BuiltIn(lambda data_dir, image_size: load_cifar("cifar100", data_dir), 100),
    "imagenet2012": BuiltIn(load_imagenet, 1000, streamed=True),
    "npz": BuiltIn(lambda data_dir, image_size: load_npz(data_dir), None),
}
DATASETS = tuple(BUILT_IN)
NUM_CLASSES = {name: known.num_classes for name, known in BUILT_IN.items() if known.num_classes}

__all__ = ["BUILT_IN", "DATASETS", "IGNORED_LABEL", "NUM_CLASSES", "Dataset", "DatasetLike",
           "StreamedDataset", "check_padding", "hold_out", "load_dataset", "load_digits",
           "looks_channels_first", "make_dataset", "model_input_dtype", "scored"]


def load_dataset(name: str, data_dir: str = "", image_size: int = 224) -> DatasetLike:
    """The data set `name`; `data_dir` says where CIFAR comes from (data/cifar.py), where
    tensorflow-datasets keeps ImageNet, or which .npz file to read; `image_size` is
    ImageNet's crop."""
    if name not in BUILT_IN:
        raise ValueError(f"dataset={name!r} is unknown; allowed: {DATASETS}")
    return BUILT_IN[name].load(data_dir, image_size)
