"""Persistence, one mechanism: SQL text on the driver's cursor, one repository module
per aggregate, composed by a :class:`~peakpilot.workflow.store.transaction.Transaction`
that :class:`~peakpilot.workflow.store.database.Database` hands out, and one adapter
(:mod:`~peakpilot.workflow.store.errors`) from driver errors to peakpilot's.

The SQLModel tables in :mod:`peakpilot.workflow.tables` remain the declared schema, for
Alembic's migrations and the test that compares them with the migrated database; no
statement at run time goes through the ORM.
"""
