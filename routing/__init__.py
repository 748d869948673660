"""Routing rules, requests to departments and outbound dialling (see issues 3 and 5)."""
