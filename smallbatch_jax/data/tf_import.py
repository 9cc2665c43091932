"""TensorFlow and tensorflow-datasets, for the paths that need them, and only those.

Preparing CIFAR through tensorflow-datasets and streaming ImageNet use TensorFlow (its image
codecs and tf.data); the embedded digits, CIFAR's official python version and any .npz file
never import it. So TensorFlow is an optional extra, `pip install -e ".[tfds]"`, and
`tensorflow()` is the one place it is imported: with a message naming the extra when it is
missing, and kept off the GPUs and TPUs, which belong to JAX (as big_vision does).
"""

EXTRA = 'pip install -e ".[tfds]"  (or: pip install tensorflow-cpu tensorflow-datasets)'


def tensorflow():
    """(tensorflow, tensorflow_datasets), imported, with TensorFlow hidden from the
    accelerators; ImportError naming the extra where they are not installed."""
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            f"this data path needs TensorFlow and tensorflow-datasets ({error}); install the "
            f"extra: {EXTRA}. The digits, the official python version of CIFAR and .npz "
            "files need neither.") from error
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):  # no such device kind, or already initialized
            pass
    return tf, tfds
