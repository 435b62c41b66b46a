"""The seeds of many replications at once, bit for bit those of ``numpy.random.SeedSequence``.

Replication ``rep`` of grid cell ``cell`` draws stage ``i`` of
:data:`~lmmsim.simulate.draws.STREAMS` from
``default_rng(SeedSequence(seed, spawn_key=(cell, rep, i)))`` (see
:func:`lmmsim.simulate.draws.child`). Building that SeedSequence and seeding a PCG64 from
it costs ~10 µs in Python per stream, more than drawing the replication's numbers.
:func:`stream_states` runs SeedSequence's hash (numpy's ``bit_generator.pyx``: pool of
4 words, ``hashmix``, ``mix``, ``generate_state``) on arrays, all replications at once, and
:func:`generator` seeds a PCG64 with the resulting words: the same generator, the same
draws, ~1 µs each. A test compares the words with SeedSequence's for many keys.
"""

from __future__ import annotations

import numpy as np
from numpy.random.bit_generator import ISeedSequence

_POOL = 4
_INIT_A, _MULT_A = np.uint32(0x43B0D7E5), np.uint32(0x931E8875)
_INIT_B, _MULT_B = np.uint32(0x8B51F9DD), np.uint32(0x58F38DED)
_MIX_L, _MIX_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_SHIFT = np.uint32(16)
_WORD = 2**32


def words(value: int) -> list[int]:
    """An integer as SeedSequence reads it: 32-bit words, least significant first (0 is [0])."""
    if value == 0:
        return [0]
    out = []
    while value > 0:
        out.append(value & (_WORD - 1))
        value >>= 32
    return out


def _hashmix(value: np.ndarray, const: list[np.uint32]) -> np.ndarray:
    value = value ^ const[0]
    with np.errstate(over="ignore"):
        const[0] = np.uint32(const[0] * _MULT_A)
    value = value * const[0]
    return value ^ (value >> _SHIFT)


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = _MIX_L * x - _MIX_R * y
    return result ^ (result >> _SHIFT)


def stream_states(seed: int, cell: int, reps: np.ndarray, stream: int) -> np.ndarray:
    """``SeedSequence(seed, spawn_key=(cell, rep, stream)).generate_state(4, numpy.uint64)``
    for every ``rep`` in ``reps``: shape (R, 4), what PCG64 is seeded with.

    ``seed``, ``cell`` and ``stream`` are non-negative integers, ``reps`` below 2**32.
    """
    reps = np.asarray(reps, dtype=np.int64)
    if reps.size and (reps.min() < 0 or reps.max() >= _WORD):
        raise ValueError(f"reps: got values outside [0, 2**32), expected replication numbers below {_WORD}")
    run = words(int(seed))
    run += [0] * (_POOL - len(run))  # SeedSequence pads the entropy when there is a spawn key
    fixed = [np.full(len(reps), w, dtype=np.uint32) for w in run + words(int(cell))]
    entropy = [*fixed, reps.astype(np.uint32), *[np.full(len(reps), w, np.uint32) for w in words(int(stream))]]
    const = [_INIT_A]
    pool = [_hashmix(entropy[i], const) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = _mix(pool[dst], _hashmix(pool[src], const))
    for src in range(_POOL, len(entropy)):
        for dst in range(_POOL):
            pool[dst] = _mix(pool[dst], _hashmix(entropy[src], const))
    out = np.empty((len(reps), 2 * _POOL), dtype=np.uint32)
    hash_const = _INIT_B
    for i in range(2 * _POOL):
        value = pool[i % _POOL] ^ hash_const
        with np.errstate(over="ignore"):
            hash_const = np.uint32(hash_const * _MULT_B)
        value = value * hash_const
        out[:, i] = value ^ (value >> _SHIFT)
    return out.astype("<u4").view("<u8").astype(np.uint64)


class _Words(ISeedSequence):
    """A seed that hands a bit generator the words :func:`stream_states` computed."""

    __slots__ = ("state",)

    def __init__(self, state: np.ndarray) -> None:
        self.state = state

    def generate_state(self, n_words: int, dtype=np.uint32) -> np.ndarray:
        """The precomputed words (PCG64 asks for 4 as uint64)."""
        if n_words != _POOL or np.dtype(dtype) != np.uint64:
            raise ValueError(f"n_words, dtype: got {n_words}, {dtype}; expected 4 words of uint64 (PCG64)")
        return self.state


def generator(state: np.ndarray) -> np.random.Generator:
    """``default_rng`` of the SeedSequence whose :func:`stream_states` row is ``state``."""
    return np.random.Generator(np.random.PCG64(_Words(state)))
