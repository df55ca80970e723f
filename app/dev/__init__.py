"""Developer tooling above the service and the simulator: `storekit-sync dev` and `demo`."""
