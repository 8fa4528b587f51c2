"""Threadline: the conversation backbone for AI agents."""

__version__ = "0.1.0"
