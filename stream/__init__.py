"""anomstream core: settings, message schemas, Kafka plumbing, the embedded broker and the CLI."""

__version__ = "0.1.0"
