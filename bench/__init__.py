"""Benchmarks that run the whole Waybill system; `./waybill bench` runs the order pipeline."""
