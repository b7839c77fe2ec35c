"""Waybill's five services and the plumbing they share (`services.common`)."""
