"""The reconciliation (SPEC §6): nothing Apple said is ever missed."""
