"""Coursework: one dataset per student from a roster, reproducible from a course seed."""

from lmmsim.course.roster import ID_COLUMN, course_datasets, read_roster, student_seed

__all__ = ["ID_COLUMN", "course_datasets", "read_roster", "student_seed"]
