"""What plays next: queue records and the pure rules that order them, plus the local playlist source."""
