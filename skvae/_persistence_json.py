"""The JSON part of a file written by :func:`skvae.save`: plain values, tagged.

JSON has no tuples, devices or arrays, and its objects could be mistaken for
user dicts; :func:`to_json` writes each such value as an object of one tag,
and :func:`from_json` builds them back, never anything else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class Unstorable(TypeError):
    """A value that the JSON part of the file cannot hold."""


def to_json(value: Any) -> Any:
    """``value`` as plain JSON, with tuples, dicts, devices and string arrays tagged.

    Every JSON object in the result is a tag with one key, so no user dict can
    be mistaken for one.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.bool_ | np.integer | np.floating):
        return value.item()
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: to_json(v) for k, v in value.items()}}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, np.ndarray) and _is_string_array(value):
        return {"__str_array__": value.ravel().tolist(), "dtype": value.dtype.str,
                "shape": list(value.shape)}  # fmt: skip
    raise Unstorable(type(value).__name__)


def _is_string_array(array: np.ndarray) -> bool:
    if array.dtype.kind == "U":
        return True
    return array.dtype == object and all(isinstance(v, str) for v in array.flat)


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json`; builds only lists, tuples, dicts, devices, arrays."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(from_json(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: from_json(v) for k, v in value["__dict__"].items()}
    if "__device__" in value:
        return torch.device(value["__device__"])
    if "__str_array__" in value:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "UO":
            raise ValueError(f"a string array of dtype {dtype} is not valid.")
        return np.array(value["__str_array__"], dtype=dtype).reshape(value["shape"])
    raise ValueError(f"unknown JSON tag {sorted(value)}.")
