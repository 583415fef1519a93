"""Whether bfloat16 autocast pays on this machine's CPU."""

from __future__ import annotations

import torch

# On a CPU without bfloat16 instructions oneDNN emulates them: the autoencoders trained
# 1.3-1.6x slower under bf16 autocast than in float32 on an AVX-512 Xeon without
# AVX512-BF16 (`latentsim bench autoencoder`, docs/zoo.md), where they ran 1.85x faster on
# an EPYC with it.
EMULATED_BF16 = (
    "bf16 autocast on a CPU without bfloat16 instructions (no AVX512-BF16, no AMX): "
    "emulated, slower than float32 here (docs/zoo.md); the run goes on"
)
_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively, or where this torch cannot tell."""
    probes = [getattr(torch.cpu, name, None) for name in _PROBES]
    if not all(callable(probe) for probe in probes):
        return True
    return any(probe() for probe in probes)
