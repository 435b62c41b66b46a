"""Simulate data from a :class:`~lmmsim.design.Design`: one dataset as a DataFrame
(:func:`simulate`) or many replications as arrays (:func:`simulate_batch`), from the same
draws (:mod:`lmmsim.simulate.draws`)."""

from lmmsim.simulate.batch import Batch, batch_from_data, design_matrices, simulate_batch
from lmmsim.simulate.single import Simulation, seed_sequence, simulate

__all__ = ["Batch", "Simulation", "batch_from_data", "design_matrices", "seed_sequence", "simulate", "simulate_batch"]
