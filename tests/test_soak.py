"""A shorter version of tests/soak.py (the 10,000-step run): 2,000 optimizer steps over
every optimizer class, in this process, with the resident memory flat after warm-up."""

import keras

from tests.soak import run

# A leak of 1 KB per step (one stray tensor, a retraced function) is 1.3 MB here; allocator
# pools and sampling noise stay well under the bound. The figures are printed (pytest -s).
BOUND_MB = 4.0


def test_memory_is_flat_after_warmup():
    threads = None
    if keras.backend.backend() == "torch":
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # on a busy 2-core machine torch's spinning threads cost 6x the CPU
    try:
        result = run(steps=2_000, warmup=700, sample_every=100)
    finally:
        if threads:
            torch.set_num_threads(threads)
    figures = {k: v for k, v in result.items() if k != "samples"}
    print(figures)
    assert result["optimizer_steps"] == 2_000 and result["weights_finite"]
    assert result["growth_after_warmup_mb"] < BOUND_MB, figures
    assert result["max_growth_after_warmup_mb"] < BOUND_MB, figures
