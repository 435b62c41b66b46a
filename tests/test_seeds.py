"""Seeds of many replications at once are SeedSequence's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from lmmsim.simulate.seeds import generator, stream_states, words


@pytest.mark.parametrize("seed", [0, 1, 2026, 2**32 - 1, 2**32, 2**64 + 3, 2**140 + 9])
@pytest.mark.parametrize("cell", [0, 5, 2**32 + 1])
def test_stream_states_are_those_of_seed_sequence(seed, cell):
    reps = np.array([0, 1, 2, 999, 2**31, 2**32 - 1])
    for stream in range(4):
        got = stream_states(seed, cell, reps, stream)
        expected = [np.random.SeedSequence(seed, spawn_key=(cell, int(r), stream)).generate_state(4, np.uint64)
                    for r in reps]
        np.testing.assert_array_equal(got, np.array(expected))


def test_generator_draws_as_default_rng():
    state = stream_states(7, 2, [11], 1)[0]
    expected = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(2, 11, 1)))
    got = generator(state)
    np.testing.assert_array_equal(got.standard_normal(50), expected.standard_normal(50))
    np.testing.assert_array_equal(got.permutation(9), expected.permutation(9))


def test_words_read_integers_as_seed_sequence():
    assert words(0) == [0]
    assert words(2**32 + 5) == [5, 1]


def test_replications_out_of_range_are_refused():
    with pytest.raises(ValueError, match="reps"):
        stream_states(1, 0, [2**32], 0)
