"""Returns service: Return authorizations, receipts, inspections, dispositions and recalls."""
