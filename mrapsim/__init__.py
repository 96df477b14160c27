"""mrapsim: an AWS S3 Multi-Region Access Point edge emulator."""

__version__ = "0.1.0"
