"""The PyTorch baseline is the same network and the same SGD step as ours (runs where PyTorch
is installed: `pip install torch`; the GPU check skips its column without it)."""

import jax
import numpy as np
import optax
import pytest

from smallbatch_jax.diagnostics.timing import synthetic_dataset
from smallbatch_jax.engine import cross_entropy
from smallbatch_jax.models import create_model
from smallbatch_jax.optim import paper_sgd

torch = pytest.importorskip("torch")
from smallbatch_jax.diagnostics.torch_baseline import (  # noqa: E402
                                                       load_flax_params, paper_sgd_torch, torch_convnet, torch_sequential_runner)


@pytest.fixture(scope="module")
def alexnet():
    model = create_model("alexnet", 10)
    x = np.random.default_rng(0).normal(size=(6, 32, 32, 3)).astype(np.float32)
    return model, model.init(jax.random.key(0), x, train=False)["params"], x


def test_same_parameters_same_logits(alexnet):
    model, params, x = alexnet
    module = torch_convnet(model, (32, 32, 3))
    assert sum(p.numel() for p in module.parameters()) == sum(
        p.size for p in jax.tree.leaves(params))
    load_flax_params(module, params)
    ours = np.asarray(model.apply({"params": params}, x, train=False))
    theirs = module(torch.as_tensor(x.transpose(0, 3, 1, 2))).detach().numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)
    # Odd spatial sizes pool like Flax too (padding on the high side).
    small = np.random.default_rng(1).normal(size=(2, 15, 15, 3)).astype(np.float32)
    net = create_model("small_cnn", 10)
    net_params = net.init(jax.random.key(2), small, train=False)["params"]
    module = torch_convnet(net, (15, 15, 3))
    load_flax_params(module, net_params)
    np.testing.assert_allclose(
        module(torch.as_tensor(small.transpose(0, 3, 1, 2))).detach().numpy(),
        np.asarray(net.apply({"params": net_params}, small, train=False)), rtol=1e-4, atol=1e-4)


def test_one_sgd_step_equals_paper_sgd(alexnet):
    model, params, x = alexnet
    labels = np.arange(len(x)) % 10
    base_lr, weight_decay, m = 2.0**-6, 5e-4, len(x)

    def loss_fn(p):
        return cross_entropy(model.apply({"params": p}, x, train=True), labels).mean()

    tx = paper_sgd(base_lr, m, total_steps=100, weight_decay=weight_decay)
    updates, _ = tx.update(jax.grad(loss_fn)(params), tx.init(params), params)
    expected = optax.apply_updates(params, updates)

    module = torch_convnet(model, (32, 32, 3))
    load_flax_params(module, params)
    optimizer = paper_sgd_torch(module, base_lr, m, weight_decay)
    loss = torch.nn.functional.cross_entropy(module(torch.as_tensor(x.transpose(0, 3, 1, 2))),
                                             torch.as_tensor(labels))
    loss.backward()
    optimizer.step()
    reference = torch_convnet(model, (32, 32, 3))
    load_flax_params(reference, expected)
    for ours, theirs in zip(reference.parameters(), module.parameters(), strict=True):
        np.testing.assert_allclose(theirs.detach().numpy(), ours.detach().numpy(),
                                   rtol=1e-4, atol=1e-6)
    # The step did move the weights.
    assert not np.allclose(jax.tree.leaves(expected)[1], jax.tree.leaves(params)[1])


def test_sequential_runner_times_every_run(alexnet):
    model, params, _ = alexnet
    dataset = synthetic_dataset((32, 32, 3), 10, 16)
    first, first_steps, run = torch_sequential_runner(model, params, dataset, batch_size=4,
                                                      num_runs=2, steps=3, base_lr=2.0**-14,
                                                      weight_decay=5e-4, device="cpu")
    assert first > 0 and first_steps == 1 and run() > 0


def test_batch_norm_networks_are_refused():
    with pytest.raises(ValueError, match="bn='conv'"):
        torch_convnet(create_model("alexnet_bn_conv", 10), (32, 32, 3))


def test_the_vmapped_grid_trains_each_model_as_its_own_sgd(alexnet):
    """torch.func's grid of K learning rates: after 3 steps, each stacked model equals the
    same network trained alone by paper_sgd_torch at its η̃, on the same batches."""
    from smallbatch_jax.diagnostics.torch_baseline import (torch_vmapped_grid,
                                                           torch_vmapped_runner)
    model, params, _ = alexnet
    dataset = synthetic_dataset((32, 32, 3), 10, 16)
    base_lrs, m, weight_decay = (2.0**-14, 2.0**-11), 4, 5e-4  # (both stable)
    train, stacked = torch_vmapped_grid(model, params, dataset, m, base_lrs, weight_decay,
                                        "cpu")
    train(3)
    order = np.random.default_rng(0).permutation(16)
    images = torch.as_tensor(dataset.train_images).permute(0, 3, 1, 2).float()
    mean = torch.as_tensor(dataset.mean).view(1, -1, 1, 1)
    std = torch.as_tensor(dataset.std).view(1, -1, 1, 1)
    for k, lr in enumerate(base_lrs):
        module = torch_convnet(model, (32, 32, 3))
        load_flax_params(module, params)
        optimizer = paper_sgd_torch(module, lr, m, weight_decay)
        for step in range(3):
            index = torch.as_tensor(order[step * m:(step + 1) * m])
            loss = torch.nn.functional.cross_entropy(
                module((images[index] - mean) / std),
                torch.as_tensor(dataset.train_labels[order[step * m:(step + 1) * m]].astype(np.int64)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        for name, value in module.named_parameters():
            np.testing.assert_allclose(stacked[name][k].numpy(), value.detach().numpy(),
                                       rtol=1e-4, atol=1e-6)
    assert not torch.allclose(stacked["0.weight"][0], stacked["0.weight"][1])
    first, first_steps, run = torch_vmapped_runner(model, params, dataset, m, base_lrs, 2,
                                                   weight_decay, "cpu")
    assert first > 0 and run() > 0
