"""Order service: catalogue, warehouses, lot-aware stock ledger, reservations, orders."""
