"""The shared core: settings, message formats, Kafka clients and loops, the embedded broker, windows and
dataset readers. It imports nothing from the layers above it."""
