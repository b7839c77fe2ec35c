"""Order to delivery (`order-{id}`): credit, reservation, backorder, shipments, tracking."""
