"""The reconciliation (docs/api.md §6): nothing Apple said is ever missed."""
