"""The purchase order workflow (`po-{id}`)."""
