"""Imports of the optional dependencies, with errors that name the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(name: str, extra: str, purpose: str) -> ModuleType:
    """Import ``name``, or say which skvae extra provides it.

    Parameters
    ----------
    name : str
        Dotted name of the module to import.
    extra : str
        The skvae extra (``pip install "skvae[extra]"``) that installs it.
    purpose : str
        What needs it, for the error message, e.g. ``"skvae.save"``.

    Returns
    -------
    module : module
        The imported module.

    Examples
    --------
    >>> from skvae._optional import import_optional
    >>> import_optional("json", "none", "this example").__name__
    'json'
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the package {name.split('.')[0]!r}, which is not installed; "
            f'install it with: pip install "skvae[{extra}]"'
        ) from exc
