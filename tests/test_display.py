"""lmmsim.display: reader's tables without row numbers, with human headers."""

import pandas as pd
import pytest

from lmmsim.display import header, show


def test_row_numbers_are_dropped_and_meaningful_indexes_kept():
    frame = pd.DataFrame({"rejection": [0.25, 0.05]}, index=[0, 2])
    assert "<th></th>" not in show(frame)._repr_html_()
    assert list(show(frame).frame.columns) == ["rejection rate"]
    named = frame.rename_axis("method")
    assert list(show(named).frame.columns) == ["method", "rejection rate"]
    assert list(show(named, index=False).frame.columns) == ["rejection rate"]
    labelled = pd.DataFrame({"estimate": [1.0]}, index=["Intercept"])
    assert show(labelled).frame.iloc[0, 0] == "Intercept"


def test_headers_measures_and_overrides():
    assert header("rejection_mcse") == "MC SE"
    assert header("emp_se") == "empirical SE"
    assert header("n_clusters") == "n clusters"
    assert header("cover sigma_u") == "cover sigma_u"
    shown = show(pd.DataFrame({"p_value": [0.5]}), headers={"p_value": "p"})
    assert list(shown.frame.columns) == ["p"]


def test_series_has_no_dtype_footer_and_floats_are_rounded():
    counts = pd.Series([3, 1], index=pd.Index(["a", "b"], name="status"), name="count")
    text = repr(show(counts))
    assert "dtype" not in text and "Name:" not in text
    assert repr(show(pd.DataFrame({"x": [0.123456]}), digits=2)).splitlines()[1].strip() == "0.12"


@pytest.mark.parametrize("bad", [{"data": [1, 2]}, {"digits": -1}, {"digits": 1.5}])
def test_bad_input_names_the_parameter(bad):
    args = {"data": pd.DataFrame({"x": [1]}), **bad}
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        show(args.pop("data"), **args)
