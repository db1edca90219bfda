"""The compiled recurrence (C, built at install) and its binding."""
