"""FrozenMap: read-only, equal to a dict with the same items, pickled by itself."""

from __future__ import annotations

import copyreg
import pickle
from types import MappingProxyType

import pytest

import lmmsim  # noqa: F401 - importing the package must not change pickling globally
from lmmsim import scenarios
from lmmsim.frozen import FrozenMap, freeze, thaw


def test_read_only_and_equal_to_a_dict():
    m = FrozenMap({"a": 1.0, "b": 2.0})
    assert m == {"a": 1.0, "b": 2.0} and list(m) == ["a", "b"] and len(m) == 2
    with pytest.raises(TypeError):
        m["a"] = 3.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        m._items = {}  # type: ignore[misc]


def test_pickles_without_a_global_registration():
    assert MappingProxyType not in copyreg.dispatch_table
    design = scenarios.cluster_trial(n_clusters=4)
    copy = pickle.loads(pickle.dumps(design))
    assert copy == design and isinstance(copy.beta, FrozenMap)


def test_freeze_and_thaw_round_trip():
    value = {"sd": {"g": {"Intercept": 1.0}}, "corr": [[1.0, 0.5], [0.5, 1.0]]}
    frozen = freeze(value)
    assert isinstance(frozen["sd"]["g"], FrozenMap) and frozen["corr"] == ((1.0, 0.5), (0.5, 1.0))
    assert thaw(frozen) == value
