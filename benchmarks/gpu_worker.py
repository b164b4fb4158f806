"""`benchmarks/worker.py` on the device Keras uses: what `python -m benchmarks.gpu` times.

    KERAS_BACKEND=torch KERAS_TORCH_DEVICE=cuda python -m benchmarks.gpu_worker --out torch.json [worker options]
    KERAS_BACKEND=jax JAX_PLATFORMS=cuda python -m benchmarks.gpu_worker --out jax.json [worker options]

The rows, sizes, rounds, records and tables are the worker's (same options, same JSON). What
changes on torch: gradients, torch.optim's parameters and the bandwidth probe's tensors are put
on the device Keras put the weights on (the worker makes CPU tensors), and every step ends with
`torch.cuda.synchronize()`, so that a step's time is its kernels' and not their launch; peak
extra memory is the CUDA allocator's. On JAX nothing is moved: `jnp.asarray` places on the
default device (the GPU under `JAX_PLATFORMS=cuda`) and every step already blocks on its result.
On a CUDA device the NumPy (host memory) probe is left out: the device's own `a += b` is the
bandwidth the bound uses. Each record says which device it ran on (`device`).
"""

from __future__ import annotations

import sys

from benchmarks import worker as w

_keras_contender = w.keras_contender
_bandwidth_contenders = w.bandwidth_contenders
_peak_extra_bytes = w.peak_extra_bytes
_environment = w.environment
_optax_contender = w.optax_contender


def torch_device():
    import torch
    from keras.src.backend.torch import core

    return torch.device(core.get_device() if hasattr(core, "get_device") else core.DEFAULT_DEVICE)


def on_cuda() -> bool:
    if w.BACKEND == "torch":
        return torch_device().type == "cuda"
    if w.BACKEND == "jax":
        import jax

        return jax.default_backend() == "gpu"
    return False


def device_name() -> str:
    if w.BACKEND == "torch":
        return str(torch_device())
    if w.BACKEND == "jax":
        import jax

        return str(jax.devices()[0])
    return "cpu"


def sync() -> None:
    if w.BACKEND == "torch":
        import torch

        if torch.cuda.is_available() and torch_device().type == "cuda":
            torch.cuda.synchronize()


def keras_contender(impl: str, factory: str, weights_np, grads_np):
    if w.BACKEND != "torch":
        contender = _keras_contender(impl, factory, weights_np, grads_np)
        contender.info["device"] = device_name()
        return contender
    import keras
    import torch

    def make():
        optimizer = eval(factory, {"ka": w.ka, "keras": keras})
        variables = [keras.Variable(x, name=f"w{i}") for i, x in enumerate(weights_np)]
        optimizer.build(variables)
        device = variables[0].value.device
        contender.info["state_bytes"], contender.info["slot_bytes"] = w.state_bytes_keras(optimizer)
        contender.info["class"] = type(optimizer).__module__ + "." + type(optimizer).__name__
        contender.info["device"] = str(device)
        grads = [torch.from_numpy(g.copy()).to(device) for g in grads_np]
        try:
            from keras_adaptive.backend import torch_fused

            contender.info["torch_path"] = torch_fused.describe(optimizer, variables)
        except (ImportError, AttributeError):
            pass

        def step():
            optimizer.apply(grads, variables)
            sync()

        return step

    contender = w.Contender(impl, make)
    return contender


def torch_contender(impl: str, spec: tuple, weights_np, grads_np, fused: bool):
    import torch

    def make():
        device = torch_device()
        name, kwargs = spec  # from worker.torch_peer
        params = [torch.nn.Parameter(torch.from_numpy(x.copy()).to(device)) for x in weights_np]
        for p, g in zip(params, grads_np):
            p.grad = torch.from_numpy(g.copy()).to(device)
        optimizer = getattr(torch.optim, name)(params, **kwargs, **({"fused": True} if fused else {"foreach": True}))
        optimizer.step()  # creates the state
        sync()
        state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        contender.info["state_bytes"] = sum(t.numel() * t.element_size() for t in state)
        contender.info["slot_bytes"] = sum(t.numel() * t.element_size() for t in state if t.dim() > 0)
        contender.info["device"] = str(device)

        def step():
            optimizer.step()
            sync()

        return step

    contender = w.Contender(impl, make)
    return contender


def optax_contender(spec: str, weights_np, grads_np):
    contender = _optax_contender(spec, weights_np, grads_np)
    contender.info["device"] = device_name()
    return contender


def bandwidth_contenders(n: int) -> list:
    probes = _bandwidth_contenders(n)
    if w.BACKEND == "torch":

        def native_probe():
            import torch

            a, b = torch.ones(n, device=torch_device()), torch.ones(n, device=torch_device())

            def step():
                a.add_(b)
                sync()

            return step

        probes = [
            p if p.impl != "bandwidth_native" else w.Contender(p.impl, native_probe, bytes_per_step=12 * n)
            for p in probes
        ]
    if on_cuda():
        probes = [p for p in probes if p.impl != "bandwidth_numpy"]
    for p in probes:
        p.info["device"] = "cpu" if p.impl == "bandwidth_numpy" else device_name()
    return probes


def peak_extra_bytes(step):
    """The CUDA allocator's peak over what it held before a warm step (torch on CUDA); else the worker's
    resident-memory measure (host memory: meaningless for device buffers, so None on a JAX GPU)."""
    if w.BACKEND == "torch" and on_cuda():
        import torch

        sync()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        sync()
        return max(0, torch.cuda.max_memory_allocated() - before)
    if on_cuda():
        return None
    return _peak_extra_bytes(step)


def environment(threads=None) -> dict:
    info = _environment(threads)
    info["device"] = device_name()
    info["on_cuda"] = on_cuda()
    if w.BACKEND == "torch":
        import torch

        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
            info["torch_cuda"] = torch.version.cuda
    if w.BACKEND == "jax":
        import jax

        info["jax_devices"] = [str(d) for d in jax.devices()]
        info["device_kind"] = jax.devices()[0].device_kind
    return info


def install() -> None:
    """Point the worker's contenders at this module's device-aware ones."""
    w.keras_contender = keras_contender
    w.torch_contender = torch_contender
    w.optax_contender = optax_contender
    w.bandwidth_contenders = bandwidth_contenders
    w.peak_extra_bytes = peak_extra_bytes
    w.environment = environment


def main(argv=None) -> None:
    install()
    w.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
