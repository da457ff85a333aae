"""Payments through a provider: the interface (``provider``), Stripe (``stripe_provider``, the only importer
of ``stripe``), free (``free``), and the hub's flow over them (``flow``: checkouts, webhooks, refunds)."""
