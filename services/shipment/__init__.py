"""Shipment service: Carriers, shipments per warehouse, packages, picked lots and tracking."""
