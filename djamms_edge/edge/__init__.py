"""The edge daemon: one per venue box; fetches, analyses and plays media, syncs with the hub."""
