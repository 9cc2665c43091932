"""The models, by the name a config gives them.

`create_model(name, num_classes, bn_batch_size, conv)` returns a Flax module called as
`model.apply(variables, images, train=...)`; models with BatchNorm keep their running
statistics in the 'batch_stats' collection. `conv` is the convolution layer factory
(models/conv.py: `conv_layer`), which the execution plan chooses; it never changes the
parameters.

A user's model: `name` "package.module:attribute" (imported), or the object itself through
the API (`user_model`): a Flax module, a flax.nnx Module class (wrapped for Linen), or a
factory called with `num_classes` that returns a Flax module. It is called like the
built-in ones (`train=`; stochastic layers draw from the 'dropout' stream); it builds its
own layers, and its plain `nn.Conv` layers compute through the plan's convolution all the
same (models/conv.py: follow_plan).
"""

import dataclasses
import inspect
import sys

import jax
from flax import linen as nn

from smallbatch_jax.config_args import import_attribute
from smallbatch_jax.models.convnet import reduced_alexnet, small_cnn
from smallbatch_jax.models.resnet_cifar import CifarResNet
from smallbatch_jax.models.resnet_imagenet import ImageNetResNet50


def _resnet(depth, use_bn):
    def build(num_classes, bn_batch_size, conv):
        return CifarResNet(depth, num_classes, use_bn=use_bn, bn_batch_size=bn_batch_size,
                           conv=conv)

    return build


def _convnet(factory, bn):
    return lambda num_classes, bn_batch_size, conv: factory(num_classes, bn, bn_batch_size,
                                                            conv)


MODELS = {
    # The paper's reduced AlexNet (Figs 1, 5, 6).
    "alexnet": _convnet(reduced_alexnet, "none"),
    "alexnet_bn": _convnet(reduced_alexnet, "all"),
    "alexnet_bn_conv": _convnet(reduced_alexnet, "conv"),
    # CIFAR ResNets (Figs 2-4, 7-11, 13).
    "resnet8": _resnet(8, True),
    "resnet20": _resnet(20, True),
    "resnet32": _resnet(32, True),
    "resnet8_nobn": _resnet(8, False),
    "resnet20_nobn": _resnet(20, False),
    "resnet32_nobn": _resnet(32, False),
    # ImageNet (Figs 12, 14).
    "resnet50": lambda num_classes, bn_batch_size, conv: ImageNetResNet50(
        num_classes, bn_batch_size, conv),
    # Small networks for the embedded digits data set.
    "small_cnn": _convnet(small_cnn, "none"),
    "small_cnn_bn": _convnet(small_cnn, "all"),
}


def import_model(path: str):
    """The object "package.module:attribute" names; ValueError saying what failed."""
    return import_attribute(path, "config.model", sorted(MODELS),
                            "a Flax module or a factory of one")


def init_rngs(key) -> dict:
    """The random streams a model is initialized with: Flax's 'params' (`key` itself, so a
    Linen model's weights are those `model.init(key, …)` gives), and a 'dropout' stream,
    which a flax.nnx Dropout wrapped for Linen (nnx.bridge.ToLinen) asks for when built."""
    return {"params": key, "dropout": jax.random.fold_in(key, 1)}


def loaded_nnx():
    """flax.nnx where it is imported already (a user's NNX module imports it), else None:
    the package does not pay its import for Linen users."""
    return sys.modules.get("flax.nnx")


def _is_nnx_module(model) -> bool:
    nnx = loaded_nnx()
    return nnx is not None and isinstance(model, nnx.Module)


def _is_nnx_class(model) -> bool:
    nnx = loaded_nnx()
    return nnx is not None and isinstance(model, type) and issubclass(model, nnx.Module)


NNX_HOW = ("the lanes initialize a model once per seed and apply it functionally, as Flax "
           "Linen does: give the NNX Module class itself (its __init__ takes rngs, and "
           "num_classes where it has that argument), or nnx.bridge.ToLinen(YourClass, "
           "kwargs={...}) for other arguments")


def user_model(model, num_classes: int) -> nn.Module:
    """A Flax module from `model`: the module itself; a Module class, built with
    `num_classes=` where it has that field and without arguments otherwise (its output size
    is then checked against the data: run/config_checks.check_model); a flax.nnx Module
    class, likewise, wrapped for Linen (nnx.bridge.ToLinen: its weights and BatchNorm
    statistics become the 'params' and 'batch_stats' the lanes carry); or
    `model(num_classes)`. An NNX Module already built is refused: its weights are made, and
    the lanes make each seed's own."""
    if isinstance(model, nn.Module):
        return model
    if _is_nnx_module(model):
        raise ValueError(f"model {model_name(model)} is a flax.nnx Module already built, "
                         f"with its own weights; {NNX_HOW}")
    if _is_nnx_class(model):
        takes = inspect.signature(model.__init__).parameters
        needs = [name for name, p in list(takes.items())[1:]  # (after self)
                 if name not in ("rngs", "num_classes") and p.default is p.empty
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if needs:
            given = ", ".join(f"{name!r}: …" for name in needs)
            raise ValueError(f"model {model_name(model)}: its __init__ needs {', '.join(needs)} "
                             f"besides rngs; give nnx.bridge.ToLinen({model.__name__}, "
                             f"kwargs={{{given}}})")
        return loaded_nnx().bridge.ToLinen(model, kwargs={"num_classes": num_classes}
                                     if "num_classes" in takes else {})
    if not callable(model):
        raise ValueError(f"model {model!r} is neither a Flax module nor a factory of one")
    if isinstance(model, type) and issubclass(model, nn.Module):
        fields = {f.name for f in dataclasses.fields(model)}
        return model(num_classes=num_classes) if "num_classes" in fields else model()
    try:  # (the call's signature only: an error raised inside the factory stays its own)
        inspect.signature(model).bind(num_classes)
    except TypeError as error:
        raise ValueError(f"model factory {model!r} cannot be called with the number of "
                         f"classes ({error}); give a Flax module, a Module class, or a "
                         "function of num_classes returning one") from error
    except ValueError:
        pass  # no signature to read (a builtin): the call will tell
    built = model(num_classes)
    if _is_nnx_module(built):
        raise ValueError(f"model factory {model!r} returned a flax.nnx Module, built with "
                         f"its own weights; {NNX_HOW}")
    if not isinstance(built, nn.Module):
        raise ValueError(f"model factory {model!r} returned {type(built).__name__}, not a "
                         "Flax module")
    return built


def model_name(model) -> str:
    """How results tables name a user's model."""
    if isinstance(model, str):
        return model
    nnx = loaded_nnx()
    if nnx is not None and isinstance(model, nnx.bridge.ToLinen):
        model = model.nnx_class  # (named by the user's NNX class, not the wrapper)
    kind = model if isinstance(model, type) or not (
        isinstance(model, nn.Module) or _is_nnx_module(model)) else type(model)
    return f"{getattr(kind, '__module__', '?')}:{getattr(kind, '__qualname__', repr(kind))}"


def create_model(name: str, num_classes: int, bn_batch_size: int | None = None,
                 conv=nn.Conv):
    """The model called `name` (built in, or "package.module:attribute"); `bn_batch_size`
    (m_BN) is ignored by models without BN, `conv` by a user's model."""
    if name in MODELS:
        return MODELS[name](num_classes, bn_batch_size, conv)
    return user_model(import_model(name), num_classes)
