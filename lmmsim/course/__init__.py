"""Coursework: per-student datasets from a roster (reproducible from a course seed), answer
templates, grading against each student's own dataset, and feedback."""

from lmmsim.course.roster import ID_COLUMN, course_datasets, read_roster, student_seed

__all__ = ["ID_COLUMN", "course_datasets", "read_roster", "student_seed"]
