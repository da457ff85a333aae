"""The hub's web pages: one layout, one stylesheet, one small script, a strict CSP on every response.

A page is an aiohttp handler in its own module that calls :func:`render` with a template that extends
``base.html`` (templates/ beside this file; static files in static/, served at ``/static/``). See
docs/hub-web.md for the block names, CSS classes and the JavaScript helper.
"""

from djamms_edge.hub.web.layout import CSP, error_page, render, setup_web, static_url

__all__ = ["CSP", "error_page", "render", "setup_web", "static_url"]
