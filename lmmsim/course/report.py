"""What grading tells people: totals, each student's feedback, the class summary and plot."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from lmmsim.course.grade import COPY_TOL, EST_TOL


def totals(grades: pd.DataFrame) -> pd.DataFrame:
    """Points, maximum and percentage per student (students of the key only), with flags."""
    own = grades[grades["max_points"] > 0].groupby("student_id", sort=False)
    out = pd.DataFrame({"points": own["points"].sum(), "max_points": own["max_points"].sum()})
    out["percent"] = 100 * out["points"] / out["max_points"]
    out["flag"] = own["flag"].first()
    out["submitted"] = own["line"].apply(lambda s: s.notna().any())
    return out


def feedback(grades: pd.DataFrame, student_id: str) -> str:
    """A student's feedback: total, one line per parameter, and any hint."""
    rows = grades[grades["student_id"] == student_id]
    total = totals(rows).iloc[0]
    lines = [f"Feedback for {student_id}: {total['points']:g} of {total['max_points']:g} points "
             f"({total['percent']:.0f} %)", "",
             f"Each answer is compared with a refit of your own dataset: an estimate within {EST_TOL} "
             "standard errors of it is correct.", ""]
    for _, row in rows.iterrows():
        where = "" if pd.isna(row["line"]) else f" (line {row['line']})"
        lines.append(f"{row['parameter']}{where}: {row['points']:g}/{row['max_points']:g}, {row['reason']}")
    if total["flag"]:
        lines += ["", f"Note: {total['flag']}."]
    return "\n".join(lines) + "\n"


def class_summary(grades: pd.DataFrame) -> str:
    """A table per parameter, the class's totals, flags and rows that were not graded."""
    graded = grades[grades["status"] == "graded"]
    by = graded.groupby("parameter", sort=False)
    table = pd.DataFrame({
        "answers": by.size(),
        "correct": by["points"].apply(lambda p: int((p == 1).sum())),
        "estimate_ok": by["points"].apply(lambda p: int((p > 0).sum())),
        "mean_points": by["points"].mean().round(2),
        "interval_covers_truth": by["covers_truth"].apply(_share),
    })
    table = table.reindex([name for name in dict.fromkeys(grades["parameter"]) if name in table.index])
    total = totals(grades)
    lines = [table.to_string(), "",
             f"{int(total['submitted'].sum())} of {len(total)} students submitted; "
             f"mean {total['percent'].mean():.0f} %, median {total['percent'].median():.0f} %"]
    # Honest answers reproduce their refit almost exactly; with another course's key (and no
    # fingerprints to tell) each estimate comes as close only by chance (about 3 %), so fewer
    # than half of ten or more is a near-certain sign of the wrong key (or a class gone astray).
    exact = (graded["estimate"] - graded["reference"]).abs() <= COPY_TOL / EST_TOL * graded["tolerance"]
    if len(graded) >= 10 and exact.mean() < 0.5:
        lines.append(f"warning: only {int(exact.sum())} of {len(graded)} estimates reproduce the refit of "
                     "the student's data; is the answer key from another course seed?")
    missing = total.index[~total["submitted"]].tolist()
    if missing:
        lines.append(f"no submission: {', '.join(missing)}")
    lines += [f"{sid}: {flag}" for sid, flag in total["flag"].items() if flag]
    invalid = grades[grades["status"] == "invalid"]
    lines += [
        f"line {row['line']} ({row['student_id']}, {row['parameter']}): {row['reason']}"
        for _, row in invalid.iterrows()
    ]
    return "\n".join(lines)


def _share(covers: pd.Series) -> str:
    known = covers.dropna().astype(bool)
    return f"{int(known.sum())}/{len(known)}" if len(known) else "-"


def class_plot(grades: pd.DataFrame, parameters: list[str] | None = None):
    """Each student's estimate and interval around the truth, one panel per parameter.

    Returns a matplotlib Figure: intervals that cover the truth in blue, those that miss
    it in orange, the truth as a vertical line.
    """
    import matplotlib.pyplot as plt

    answered = grades[grades["status"].isin(["graded", "not gradable"]) & grades["estimate"].notna()]
    names = parameters or list(dict.fromkeys(answered["parameter"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 0.25 * answered["student_id"].nunique() + 1.5),
                             squeeze=False, sharey=True)
    students = sorted(answered["student_id"].unique())
    for ax, name in zip(axes[0], names):
        rows = answered[answered["parameter"] == name].set_index("student_id").reindex(students)
        y = np.arange(len(students))
        miss = rows["covers_truth"].eq(False).to_numpy()
        for mask, colour in ((~miss, "tab:blue"), (miss, "tab:orange")):
            # Bars from the interval's ends, not errors around the estimate: a wrong answer's
            # estimate may lie outside its own interval.
            ax.hlines(y[mask], rows["ci_low"][mask], rows["ci_high"][mask], color=colour)
            ax.plot(rows["estimate"][mask], y[mask], "o", color=colour, ms=4)
        ax.axvline(rows["truth"].dropna().iloc[0], color="black", lw=1)
        ax.set_title(name, fontsize=9)
    axes[0][0].set_yticks(np.arange(len(students)), students, fontsize=7)
    fig.tight_layout()
    return fig


def svg_text(fig) -> str:
    """The figure as SVG text, byte-identical for identical figures (no date, fixed ids)."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": "lmmsim", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()
