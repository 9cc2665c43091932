"""Data sets: what a run trains and tests on, by name.

- 'digits': scikit-learn's 8×8 digits, embedded (no download; data/digits.py);
- 'cifar10', 'cifar100': from an .npz file, the official python version, or
  tensorflow-datasets (data/cifar.py), chosen by `data_dir`; held in device memory;
- 'imagenet2012': tensorflow-datasets from a manual download, streamed from a host
  pipeline one batch per step (data/imagenet.py);
- 'npz': any .npz file of train_images, train_labels, test_images, test_labels (`data_dir`
  names it), of any input shape: images, flat features or token ids (data/dataset.py).
A user's own arrays or Dataset are passed to the API directly (smallbatch_jax/api.py).
"""

from smallbatch_jax.data.cifar import NUM_CLASSES as CIFAR_NUM_CLASSES, load_cifar
from smallbatch_jax.data.dataset import Dataset, load_npz, make_dataset
from smallbatch_jax.data.digits import load_digits
from smallbatch_jax.data.imagenet import StreamedDataset, load_imagenet

DATASETS = ("digits", "cifar10", "cifar100", "imagenet2012", "npz")
NUM_CLASSES = {"digits": 10, **CIFAR_NUM_CLASSES, "imagenet2012": 1000}

__all__ = ["DATASETS", "NUM_CLASSES", "Dataset", "StreamedDataset", "load_dataset",
           "load_digits", "make_dataset"]


def load_dataset(name: str, data_dir: str = "", image_size: int = 224
                 ) -> Dataset | StreamedDataset:
    """The data set `name`; `data_dir` says where CIFAR comes from (data/cifar.py), where
    tensorflow-datasets keeps ImageNet, or which .npz file to read; `image_size` is
    ImageNet's crop."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is unknown; allowed: {DATASETS}")
    if name == "npz":
        return load_npz(data_dir)
    if name == "digits":
        return load_digits()
    if name == "imagenet2012":
        return load_imagenet(data_dir, image_size)
    return load_cifar(name, data_dir)
