"""Outbound debtor campaigns: campaign data, the dialler, dispositions and their pages."""
