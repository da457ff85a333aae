"""The hub: login, player registry, paid requests, queues, playlists and the edge sync channel."""
