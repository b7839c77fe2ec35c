"""Customer service: Customers, contacts, credit and open-order exposure."""
