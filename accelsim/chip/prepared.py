"""What a call prepares before simulating (kernel tables, quantised network, mapping and plan),
kept per network and hardware so that repeated calls and sweeps with small tasks pay once.

Entries are keyed on *content*: the network's architecture, normalisation and weight bytes
(a digest recomputed on every call, so a weight changed in place is never served
stale), the hardware's resolved description, T and the quantization. A few recent entries are
kept per kind (least recently used first out); :func:`clear` empties them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from accelsim.model.network import Network

ENTRIES = 8
"""Entries kept per kind of preparation."""
PIECE = 1 << 24
"""Bytes of weights per hashed piece."""
HASH_THREADS = 4
"""Threads that hash the pieces."""

_T = TypeVar("_T")
_caches: dict[str, OrderedDict[Hashable, Any]] = {}


def fingerprint(network: Network) -> str:
    """Digest of everything in ``network`` that a preparation reads.

    The weight bytes are hashed in pieces of :data:`PIECE` bytes on a few threads (hashlib
    releases the GIL), and the pieces' SHA-256 digests in order, after the names, dtypes and
    shapes, make the key: a paper-scale network's hundreds of MB cost a fraction of what one
    sequential pass would on every call.
    """
    digest = hashlib.blake2b(digest_size=20)
    digest.update(network.architecture.model_dump_json().encode())
    digest.update(repr((network.input_mean, network.input_std)).encode())
    pieces: list[memoryview] = []
    for name in sorted(network.weights):
        w = np.ascontiguousarray(network.weights[name])
        digest.update(f"{name}:{w.dtype.str}:{w.shape}".encode())
        data = memoryview(w.reshape(-1).view(np.uint8))
        pieces.extend(data[i:i + PIECE] for i in range(0, len(data), PIECE))
    with ThreadPoolExecutor(min(HASH_THREADS, max(1, len(pieces)))) as pool:
        for piece_digest in pool.map(lambda piece: hashlib.sha256(piece).digest(), pieces):
            digest.update(piece_digest)
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
