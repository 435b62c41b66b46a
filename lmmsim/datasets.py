"""Real datasets shipped with lmmsim, for holding simulations against real data.

The files live in ``lmmsim/data/`` and are read with :mod:`importlib.resources`, so
they work from an installed wheel as well as from a source checkout, with no network.
Their provenance and licences are in ``lmmsim/data/README.md``.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_sleepstudy"]


def load_sleepstudy() -> pd.DataFrame:
    """Reaction times of 18 sleep-restricted subjects over 10 days (lme4's ``sleepstudy``).

    Average reaction time per day in a sleep-restriction study of Belenky et al.
    (2003): the subjects allowed 3 hours in bed per night, days 0 to 9. Days 0 and 1
    were adaptation and training and day 2 the baseline; the restriction began after
    day 2. lme4 (and this book, following it) uses ``Days`` as a numeric predictor
    from 0. The values are those of the R package lme4 (GPL >= 2), unchanged; see
    ``lmmsim/data/README.md`` for the provenance.

    Returns
    -------
    pandas.DataFrame
        180 rows, one per subject and day, in lme4's order (by subject, then day),
        with columns

        ``Reaction`` : float
            Average reaction time on that day, in milliseconds.
        ``Days`` : int
            Day of the study, 0 to 9.
        ``Subject`` : str
            Subject number as a label (``"308"`` ... ``"372"``), 18 subjects.

    References
    ----------
    Belenky, G., Wesensten, N. J., Thorne, D. R., Thomas, M. L., Sing, H. C.,
    Redmond, D. P., Russo, M. B. and Balkin, T. J. (2003). Patterns of performance
    degradation and restoration during sleep restriction and subsequent recovery: a
    sleep dose-response study. *Journal of Sleep Research* 12, 1-12.

    Bates, D., Maechler, M., Bolker, B. and Walker, S. (2015). Fitting linear
    mixed-effects models using lme4. *Journal of Statistical Software* 67(1), 1-48.

    Examples
    --------
    >>> from lmmsim.datasets import load_sleepstudy
    >>> data = load_sleepstudy()
    >>> data.shape
    (180, 3)
    >>> data["Subject"].nunique()
    18
    """
    source = resources.files("lmmsim").joinpath("data", "sleepstudy.csv")
    with source.open("r", encoding="utf-8") as handle:
        data = pd.read_csv(handle, dtype={"Reaction": float, "Days": int, "Subject": str})
    return data
