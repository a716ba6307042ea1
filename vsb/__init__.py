"""VSB: a Discord moderation and verification bot on trio."""

__version__ = "0.1.0"
