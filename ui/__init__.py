"""Every face a person sees: the ``fluoro`` command line and the web pages.

The top of the house: it composes the collector's engine and query API with the pages.
See docs/ARCHITECTURE.md.
"""
