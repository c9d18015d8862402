"""What a call prepares before simulating (kernel tables, quantised network, mapping and plan),
kept per network and hardware so that repeated calls and sweeps with small tasks pay once.

Entries are keyed on *content*: the network's architecture, normalisation and weight bytes
(a BLAKE2b digest, recomputed on every call, so a weight changed in place is never served
stale), the hardware's resolved description, T and the quantization. A few recent entries are
kept per kind (least recently used first out); :func:`clear` empties them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

from accelsim.network import Network

ENTRIES = 8
"""Entries kept per kind of preparation."""

_T = TypeVar("_T")
_caches: dict[str, OrderedDict[Hashable, Any]] = {}


def fingerprint(network: Network) -> str:
    """Digest of everything in ``network`` that a preparation reads."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(network.architecture.model_dump_json().encode())
    digest.update(repr((network.input_mean, network.input_std)).encode())
    for name in sorted(network.weights):
        w = np.ascontiguousarray(network.weights[name])
        digest.update(f"{name}:{w.dtype.str}:{w.shape}".encode())
        digest.update(w.data)
    return digest.hexdigest()


def cached(kind: str, key: Hashable, build: Callable[[], _T]) -> _T:
    """The entry of ``kind`` under ``key``, built by ``build()`` on a miss."""
    cache = _caches.setdefault(kind, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = build()
    cache[key] = value
    while len(cache) > ENTRIES:
        cache.popitem(last=False)
    return value


def clear() -> None:
    """Forget every prepared entry (the next call rebuilds)."""
    _caches.clear()
