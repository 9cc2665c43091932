"""The PyTorch baselines: K sequential runs of the same network in eager PyTorch, and the
same K models as one `torch.func.vmap`ped grid (`torch_vmapped_grid`).

What a PyTorch user would write to try K learning rates on a GPU: one model at a time, the
data set on the device, a batch indexed from it each step, `loss.backward()` and
`torch.optim.SGD.step()`, PyTorch's defaults otherwise (eager mode, cuDNN's default
algorithms, its default TF32 settings, which the check records). The network is built from
a Flax `ConvNet` without BatchNorm (models/convnet.py), so it is the same network: the same
layers and 'SAME' paddings, max-pools padded as Flax pads them, and, with parameters copied
from Flax (`load_flax_params`), the same logits and the same SGD step
(tests/diagnostics/test_torch_baseline.py).

PyTorch is optional: `import torch` happens inside the functions, and callers skip this
baseline where it fails (`torch_available`).
"""

import numpy as np

from smallbatch_jax.diagnostics.timing import timed_runner


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
    """(low, high) padding of lax's 'SAME': the extra goes to the high side."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def torch_convnet(model, image_shape: tuple[int, int, int]):
    """The PyTorch module of a Flax `ConvNet` without BatchNorm, on NCHW float inputs."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    if model.bn != "none":
        raise ValueError(f"torch_convnet: bn={model.bn!r}; only networks without BatchNorm")

    class SamePool(nn.Module):
        """`nn.max_pool(x, (3, 3), strides=(2, 2), padding='SAME')`: pads with −∞."""

        def forward(self, x):
            h_pads, w_pads = (_same_pads(n, 3, 2) for n in x.shape[2:])
            return F.max_pool2d(F.pad(x, (*w_pads, *h_pads), value=-float("inf")), 3, 2)

    height, width, channels = image_shape
    layers = []
    for kernel, out_channels, pool in zip(model.conv_kernels, model.conv_channels,
                                          model.pool_after):
        if kernel % 2 != 1:
            raise ValueError("torch_convnet: odd kernel sizes only ('SAME' is then symmetric)")
        layers += [nn.Conv2d(channels, out_channels, kernel, padding=kernel // 2), nn.ReLU()]
        channels = out_channels
        if pool:
            layers.append(SamePool())
            height, width = -(-height // 2), -(-width // 2)
    layers.append(nn.Flatten())
    features = channels * height * width
    for width_out in model.fc_widths:
        layers += [nn.Linear(features, width_out), nn.ReLU()]
        features = width_out
    layers.append(nn.Linear(features, model.num_classes))
    return torch.nn.Sequential(*layers)


def load_flax_params(module, params) -> None:
    """Copies Flax `ConvNet` parameters into `torch_convnet(...)`'s module, in place.

    Layouts: HWIO kernels → OIHW; (in, out) dense kernels → (out, in); and the first dense
    layer's input rows, in Flax's NHWC flattening order (h, w, c), → NCHW order (c, h, w).
    """
    import torch

    convs = [m for m in module if isinstance(m, torch.nn.Conv2d)]
    denses = [m for m in module if isinstance(m, torch.nn.Linear)]
    flax_convs = [params[f"Conv_{i}"] for i in range(len(convs))]
    flax_denses = [params[f"Dense_{i}"] for i in range(len(denses))]
    with torch.no_grad():
        for layer, p in zip(convs, flax_convs, strict=True):
            kernel = np.array(p["kernel"]).transpose(3, 2, 0, 1).copy()  # HWIO → OIHW
            layer.weight.copy_(torch.as_tensor(kernel))
            layer.bias.copy_(torch.as_tensor(np.array(p["bias"])))
        channels = convs[-1].out_channels
        for i, (layer, p) in enumerate(zip(denses, flax_denses, strict=True)):
            kernel = np.asarray(p["kernel"])
            if i == 0:  # rows (h, w, c) → (c, h, w)
                spatial = kernel.shape[0] // channels
                side = int(round(spatial ** 0.5))
                kernel = kernel.reshape(side, side, channels, -1).transpose(2, 0, 1, 3)
                kernel = kernel.reshape(channels * spatial, -1)
            layer.weight.copy_(torch.as_tensor(kernel.T.copy()))
            layer.bias.copy_(torch.as_tensor(np.array(p["bias"])))


def paper_sgd_torch(module, base_lr: float, batch_size: int, weight_decay: float):
    """`optim.paper_sgd` without a schedule: η = m·η̃ on the mean loss, L2 on weights only."""
    import torch

    decayed = [p for name, p in module.named_parameters() if name.endswith("weight")]
    others = [p for name, p in module.named_parameters() if not name.endswith("weight")]
    return torch.optim.SGD([{"params": decayed, "weight_decay": weight_decay},
                            {"params": others, "weight_decay": 0.0}],
                           lr=batch_size * base_lr)


def settings(device: str) -> dict:
    """The PyTorch version and the numerical defaults the baseline ran with."""
    import torch

    return {"torch": torch.__version__, "device": device,
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark}


def _batches(dataset, batch_size: int, dev):
    """`batch(step)`: step's standardized NCHW batch and labels, from the data set put on
    `dev` once (uint8 NHWC, as in JAX) in a fixed order, cycling through it."""
    import torch

    images = torch.as_tensor(dataset.train_images).to(dev)
    labels = torch.as_tensor(dataset.train_labels.astype(np.int64)).to(dev)
    mean = torch.as_tensor(dataset.mean).to(dev).view(1, -1, 1, 1)
    std = torch.as_tensor(dataset.std).to(dev).view(1, -1, 1, 1)
    order = torch.as_tensor(np.random.default_rng(0).permutation(len(dataset.train_labels))
                            ).to(dev)
    num_batches = len(dataset.train_labels) // batch_size

    def batch(step: int):
        b = step % num_batches
        index = order[b * batch_size:(b + 1) * batch_size]
        return (images[index].permute(0, 3, 1, 2).float() - mean) / std, labels[index]

    return batch


def torch_sequential_runner(model, params, dataset, batch_size: int, num_runs: int,
                            steps: int, base_lr: float, weight_decay: float, device: str):
    """`num_runs` models trained one after another for `steps` steps each, as
    benchmark.python_loop_runner does in JAX. Returns the runner (timing.timed_runner):
    `run()` times one repeat, in seconds per step of all runs.

    The models and optimizers are built before timing (as the JAX loop compiles before it);
    each repeat continues training them (the step costs the same).
    """
    import torch
    from torch.nn import functional as F

    dev = torch.device(device)
    batch = _batches(dataset, batch_size, dev)
    runs = []
    for _ in range(num_runs):
        module = torch_convnet(model, dataset.image_shape)
        load_flax_params(module, params)
        module.to(dev).train()
        runs.append((module, paper_sgd_torch(module, base_lr, batch_size, weight_decay)))

    def synchronize():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def train(num_steps):
        for module, optimizer in runs:
            for step in range(num_steps):
                x, y = batch(step)
                loss = F.cross_entropy(module(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        synchronize()

    return timed_runner(train, steps)  # its first call warms cuDNN and the allocator up


def torch_vmapped_grid(model, params, dataset, batch_size: int, base_lrs,
                       weight_decay: float, device: str, compile: bool = False):
    """The strongest PyTorch peer of the lanes: what a PyTorch expert writes for a grid of
    learning rates. The K = len(base_lrs) models' parameters stacked
    (`torch.func.stack_module_state`), one `torch.func.vmap` of `grad` of `functional_call`
    computes every model's gradient on the same batch in one call, and one vectorized SGD
    update (η_k = m·η̃_k, L2 on the weights, as `paper_sgd_torch`) follows; `compile`: the
    step `torch.compile`d. Same network, data and batch order as `torch_sequential_runner`.
    Returns (train(num_steps), the stacked parameters {name: (K, …) tensor})."""
    import torch
    from torch.func import functional_call, grad, stack_module_state, vmap
    from torch.nn import functional as F

    dev = torch.device(device)
    batch = _batches(dataset, batch_size, dev)
    modules = []
    for _ in base_lrs:
        module = torch_convnet(model, dataset.image_shape)
        load_flax_params(module, params)
        modules.append(module.to(dev).train())
    stacked, buffers = stack_module_state(modules)
    stacked = {name: value.detach() for name, value in stacked.items()}
    skeleton = torch_convnet(model, dataset.image_shape).to("meta")
    lrs = torch.as_tensor([batch_size * lr for lr in base_lrs], dtype=torch.float32,
                          device=dev)

    def loss(p, b, x, y):
        return F.cross_entropy(functional_call(skeleton, (p, b), (x,)), y)

    gradients = vmap(grad(loss), in_dims=(0, 0, None, None))

    def step(p, x, y):
        g = gradients(p, buffers, x, y)
        with torch.no_grad():
            for name, value in p.items():
                update = g[name] + weight_decay * value if name.endswith("weight") else g[name]
                value.sub_(lrs.view(-1, *[1] * (value.dim() - 1)) * update)

    step_fn = torch.compile(step) if compile else step

    def train(num_steps):
        for i in range(num_steps):
            step_fn(stacked, *batch(i))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    return train, stacked


def torch_vmapped_runner(model, params, dataset, batch_size: int, base_lrs, steps: int,
                         weight_decay: float, device: str, compile: bool = False):
    """`torch_vmapped_grid` as a runner (timing.timed_runner): `run()` times one repeat, in
    seconds per step of all K models; its first call warms up (and compiles, if asked)."""
    train, _ = torch_vmapped_grid(model, params, dataset, batch_size, base_lrs, weight_decay,
                                  device, compile)
    return timed_runner(train, steps)
