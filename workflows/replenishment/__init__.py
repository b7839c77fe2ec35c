"""The periodic replenishment review, run by a Temporal schedule."""
