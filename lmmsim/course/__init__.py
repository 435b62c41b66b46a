"""Coursework: per-student datasets, answer templates, grading and feedback."""
