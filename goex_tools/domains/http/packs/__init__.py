"""Curated undo rules for real services, each pair with its exactness.

from goex_tools.domains.http.packs import github
api = HttpTool(github.rules())
"""
