"""The Waybill application: the `waybill` command, the embedded launcher and the demo.

It sits above the plumbing (`services/common`), the services and the workflows, and
may import any of them; nothing below imports it.
"""
