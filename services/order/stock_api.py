"""Catalogue, warehouse and stock routes (filled in by the stock ledger work)."""

from fastapi import APIRouter

routers: list[APIRouter] = []
