"""Where tensors live: moving training data to the device, and chunked inference.

Plain torch and numpy, no scikit-learn. :func:`resolve_device` reads the
estimators' ``device``; :func:`map_rows` runs a function of the fitted
networks over chunks of rows on a device, so inference memory does not grow
with the number of rows; :func:`to_device` puts training data on the device
once when it fits there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ._distributed import local_cuda_index

#: Activations per chunk of rows at inference: bounds the memory of transform & co.
CHUNK_ELEMENTS = 1 << 22


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when torch sees a GPU (under ``torchrun``, the GPU of
    ``LOCAL_RANK``), else the CPU; others as given."""
    if isinstance(device, str) and device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        index = local_cuda_index()
        return torch.device("cuda") if index is None else torch.device("cuda", index)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a device torch knows.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for, but torch sees no CUDA GPU; "
            "use device='auto' or 'cpu'."
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was asked for, but torch sees only "
            f"{torch.cuda.device_count()} CUDA GPU(s)."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: skvae runs on 'cpu' or 'cuda' devices.")
    return resolved


def to_device(X: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move ``X`` to ``device`` once if it fits in its free memory, else leave it.

    Batches of a tensor left on the host are copied to the device one at a time.
    """
    if X.device == device:
        return X
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if X.element_size() * X.nelement() > 0.5 * free:
            return X
    return X.to(device)


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """Share memory with ``X`` when torch can; copy only a read-only array
    (torch warns on read-only memory)."""
    if not X.flags.writeable:
        X = X.copy()
    return torch.from_numpy(X)


def map_rows(
    module: nn.Module,
    fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    X: np.ndarray,
    out_width: int,
    device: torch.device,
    copies: int = 1,
) -> np.ndarray:
    """Inference: ``fn(module, rows)`` over chunks of ``X`` on ``device``.

    The output has X's dtype; the module computes in its own and goes back to
    the CPU afterwards. A chunk holds about ``CHUNK_ELEMENTS`` activations of
    the widest layer, times ``copies`` when ``fn`` runs each row several times
    (Monte Carlo draws), so memory does not grow with the number of rows.
    """
    model_dtype = next(module.parameters()).dtype
    out = np.empty((X.shape[0], out_width), dtype=X.dtype)
    widest = max(
        (max(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)),
        default=1,
    )
    step = max(1, CHUNK_ELEMENTS // (max(widest, X.shape[1], out_width) * copies))
    module.to(device)
    try:
        with torch.inference_mode():
            for start in range(0, X.shape[0], step):
                chunk = as_tensor(np.ascontiguousarray(X[start : start + step]))
                result = fn(module, chunk.to(device=device, dtype=model_dtype))
                out[start : start + step] = result.reshape(len(chunk), -1).cpu().numpy()
    finally:
        module.to("cpu")
    return out
