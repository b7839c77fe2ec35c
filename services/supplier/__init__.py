"""Supplier service: Suppliers, replenishment signals, purchase orders and ASNs."""
