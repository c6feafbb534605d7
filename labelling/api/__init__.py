"""The REST API (DRF): views validate input, call one service or selector, serialize output."""
