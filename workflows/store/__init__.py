"""The state store: SQLAlchemy models and the functions that read and write them.

Callers own sessions and transactions; functions here take a ``Session`` and
never commit on their own unless their name says so.
"""
