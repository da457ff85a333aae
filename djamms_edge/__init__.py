"""DJAMMS Edge: the venue music player (edge daemon) and its hub."""

__version__ = "0.1.0"
