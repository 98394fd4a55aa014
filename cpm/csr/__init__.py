"""The CSR customer program page: search, one page per customer, and actions through the same services as the API.

It sits in ``cpm`` because it is the one place that shows every room at once (like ``cpm/urls.py``); it reads through
the apps' selectors and writes only through their services.
"""
