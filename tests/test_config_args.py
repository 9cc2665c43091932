import math

import pytest

from smallbatch_jax.config_args import import_attribute, parse_arg


def test_values_take_the_type_of_the_default():
    args = parse_arg("depth=20,bn=False,aug,dataset=cifar100,lr=0.5",
                     depth=32, bn=True, aug=False, dataset="cifar10", lr=1.0, warmup=False)
    assert args.depth == 20 and args.bn is False and args.aug is True
    assert args.dataset == "cifar100" and args.lr == 0.5 and args.warmup is False


def test_empty_arg_gives_the_defaults():
    assert parse_arg(None, depth=32).depth == 32 and parse_arg("", depth=32).depth == 32


@pytest.mark.parametrize("arg,match", [
    ("dept=20", "'dept' is unknown; allowed: \\['bn', 'depth'\\]"),
    ("depth=twenty", "depth='twenty': expected a int"),
    ("bn=maybe", "bn='maybe': expected True or False"),
])
def test_bad_arguments_name_the_key(arg, match):
    with pytest.raises(ValueError, match=match):
        parse_arg(arg, depth=32, bn=True)


def test_a_loaded_config_refuses_unknown_keys_as_the_command_line_does():
    """`config.optimiser = 'adam'` (a typo) was accepted and silently ignored."""
    import pytest

    from conftest import REPO_ROOT
    from smallbatch_jax.config_args import load_config

    config = load_config(f"{REPO_ROOT}/configs/default.py")
    config.optimizer = "adam"  # a key it has
    with pytest.raises(AttributeError, match='Key "optimiser" does not exist') as error:
        config.optimiser = "adam"
    assert 'Did you mean "optimizer"' in str(error.value)


def test_a_grid_of_powers_of_two_is_written_compactly():
    """`(2**-16, …)` is no literal to the flag parser (it became one string): '2^-16:2^-4'."""
    import pytest

    from conftest import parse
    from smallbatch_jax.config_args import expand_lr_grids, powers_of_two

    assert powers_of_two("2^-3:2^0") == (0.125, 0.25, 0.5, 1.0)
    assert powers_of_two("2**-16:2**-4:4") == (2.0**-16, 2.0**-12, 2.0**-8, 2.0**-4)
    assert powers_of_two("2^-7") == (2.0**-7,)
    for bad in ("2^0:2^-3", "3^-2", "2^-3:2^0:0", "0.5"):
        with pytest.raises(ValueError, match="grid|smaller exponent"):
            powers_of_two(bad)
    config = parse("--config=configs/default.py", "--config.base_lrs=2^-12:2^-6:3")
    assert tuple(config.base_lrs) == ("2^-12:2^-6:3",)  # what the flag parser gives
    expand_lr_grids(config)
    assert config.base_lrs == (2.0**-12, 2.0**-9, 2.0**-6)


@pytest.mark.parametrize("path,match", [
    ("objective", "config.objective='objective' is unknown; allowed: \\['classification'\\] "
                  "or 'package.module:attribute' \\(an Objective\\)"),
    ("no_such_package:f", "cannot import 'no_such_package'"),
    ("math:no_such_name", "math has no attribute 'no_such_name'"),
])
def test_a_config_names_a_users_object_by_its_path(path, match):
    """config.model and config.objective name a user's code "package.module:attribute"."""
    assert import_attribute("math:pi", "config.objective", ["classification"], "x") is math.pi
    with pytest.raises(ValueError, match=match):
        import_attribute(path, "config.objective", ["classification"], "an Objective")
