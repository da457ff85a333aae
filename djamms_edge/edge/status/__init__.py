"""The edge's local status page (``[edge.status]``): what the box is doing, live, on localhost.

``model`` defines what the daemon provides (``StatusSource``), ``server`` serves it
(``start_status_server``), ``fake`` is a hand-driven source for tests.
"""
