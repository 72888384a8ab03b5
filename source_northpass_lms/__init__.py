from .source import SourceNorthpassLms

__all__ = ["SourceNorthpassLms"]
