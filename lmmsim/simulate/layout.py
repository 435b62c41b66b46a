"""The rows of a design: units of the deepest level of each grouping tree, trees crossed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lmmsim.design import Design


def layout(design: Design) -> tuple[pd.DataFrame, dict[str, tuple[list, np.ndarray]]]:
    """The rows (deepest units of each tree, trees crossed) and, per factor, its unit
    labels and each row's unit code."""
    children: dict[str | None, list] = {}
    for f in design.factors:
        children.setdefault(f.within, []).append(f)

    # For each tree: one record per leaf unit, holding the unit index at every level.
    trees = []
    for root in children.get(None, []):
        counts = {root.name: root.n}
        parent_of = {root.name: np.arange(root.n)}  # unit -> parent unit index (self for roots)
        order = [root]
        frontier = [root]
        while frontier:
            node = frontier.pop(0)
            for child in children.get(node.name, []):
                counts[child.name] = counts[node.name] * child.n
                parent_of[child.name] = np.repeat(np.arange(counts[node.name]), child.n)
                order.append(child)
                frontier.append(child)
        if sum(len(children.get(f.name, [])) > 0 for f in order) != len(order) - 1:
            raise ValueError(
                f"factors: the tree under {root.name!r} branches; nest each factor in the previous one "
                "(or make branches separate, crossed factors)"
            )
        leaf = order[-1]
        index = {leaf.name: np.arange(counts[leaf.name])}
        for node in reversed(order[:-1]):
            child = next(c for c in children[node.name])
            index[node.name] = parent_of[child.name][index[child.name]]
        trees.append((order, index, counts[leaf.name]))

    # Cross the trees: the first tree varies slowest.
    sizes = [n for _, _, n in trees]
    grids = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")
    rows = {}
    units: dict[str, tuple[list, np.ndarray]] = {}
    for (order, index, _), grid in zip(trees, grids):
        leaf_codes = grid.ravel()
        for f in order:
            codes = index[f.name][leaf_codes]
            labels = unit_labels(f, order, index)
            units[f.name] = (labels, codes)
            if f.values is not None:
                values = np.asarray(f.values)
                # weeks 0, 1, 2 read better as integers (where int64 holds them exactly)
                if np.all(values == np.round(values)) and np.all(np.abs(values) < 2.0**53):
                    values = values.astype(int)
                rows[f.name] = values[codes % f.n]
            else:
                rows[f.name] = np.asarray(labels, dtype=object)[codes]
    data = pd.DataFrame({f.name: rows[f.name] for f in design.factors})
    return data, units


def unit_labels(factor, order, index) -> list[str]:
    """Unique labels: ``school03``, and for nested units ``school03/classroom2``."""
    by_name = {f.name: f for f in order}
    width = len(str(factor.n))
    if factor.within is None:
        return [f"{factor.name}{i + 1:0{width}d}" for i in range(factor.n)]
    parent_labels = unit_labels(by_name[factor.within], order, index)
    return [f"{p}/{factor.name}{k + 1:0{width}d}" for p in parent_labels for k in range(factor.n)]
