"""Edge ↔ hub: the master lease, the queue replica, the outbox and the one hub client."""
