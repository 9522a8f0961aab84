"""The JSON part of a file written by :func:`skvae.save`: plain values, tagged.

JSON has no tuples, devices or arrays, and its objects could be mistaken for
user dicts; :func:`to_json` writes each such value as an object of one tag,
and :func:`from_json` builds them back, never anything else.
"""

from __future__ import annotations

import json
import math
import re
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
    """Inverse of :func:`to_json`; builds only lists, tuples, dicts, devices and
    string arrays, and raises ValueError for a tag that holds anything else."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = next((t for t in _TAGS if t in value), None)
    if tag is None or set(value) != _TAGS[tag]:
        raise ValueError(f"unknown JSON tag {sorted(value)}.")
    held = value[tag]
    if tag == "__tuple__" and isinstance(held, list):
        return tuple(from_json(v) for v in held)
    if tag == "__dict__" and isinstance(held, dict):
        return {k: from_json(v) for k, v in held.items()}
    if tag == "__device__" and isinstance(held, str):
        try:
            return torch.device(held)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"{held!r} is not a torch device.") from None
    if tag == "__str_array__":
        return _string_array(held, value["dtype"], value["shape"])
    raise ValueError(f"a {tag} tag holds {_short(held)}.")


#: Each tag and the keys of its object.
_TAGS = {
    "__tuple__": {"__tuple__"},
    "__dict__": {"__dict__"},
    "__device__": {"__device__"},
    "__str_array__": {"__str_array__", "dtype", "shape"},
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _string_array(values: Any, dtype: Any, shape: Any) -> np.ndarray:
    """The array of strings ``values`` of ``dtype`` (a NumPy dtype string of
    kind U or O) and ``shape``, or a ValueError saying what is wrong."""
    try:
        kind = np.dtype(dtype).kind if isinstance(dtype, str) else None
    except TypeError:
        kind = None
    if kind is None or kind not in "UO":
        raise ValueError(f"a string array of dtype {_short(dtype)} is not valid.")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"a string array holds {_short(values)}, not a list of strings.")
    if (
        not isinstance(shape, list)
        or not all(type(n) is int and n >= 0 for n in shape)
        or math.prod(shape) != len(values)
    ):
        raise ValueError(f"a string array of {len(values)} strings has shape {_short(shape)}.")
    return np.array(values, dtype=dtype).reshape(shape)


def parse(text: str, max_chars: int, max_depth: int) -> Any:
    """The JSON document ``text``, refused (ValueError) before it is parsed if
    it is longer than ``max_chars`` or nested deeper than ``max_depth``."""
    if not isinstance(text, str) or len(text) > max_chars:
        size = len(text) if isinstance(text, str) else type(text).__name__
        raise ValueError(f"metadata of {size} characters; skvae reads at most {max_chars}.")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise ValueError(
            f"the metadata is nested {depth} deep; skvae.save writes at most {max_depth}."
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the metadata is not JSON ({exc}).") from None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of the JSON ``text`` nest (0 for a scalar),
    counted without parsing it: brackets inside strings do not count."""
    brackets = np.frombuffer(_STRING.sub("", text).encode(), dtype=np.uint8)
    steps = np.isin(brackets, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(brackets, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))
