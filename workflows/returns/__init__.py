"""The Return workflow (`return-{id}`): policy, label, receipt, inspection, resolution."""
