"""Repositories: the only modules that speak SQL. They flush, never commit: the request
(or task) boundary commits."""
