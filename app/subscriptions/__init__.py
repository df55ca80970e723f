"""The rules about a customer's subscriptions, written once for every path that changes them:
a sync (`ownership`), Apple's notifications and the reconciliation (`changes`), the readers
(`access`). The `subscriptions` table's one writer is `repository`."""
