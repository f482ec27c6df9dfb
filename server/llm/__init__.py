"""LLM backends: one module per backend, all behind the `LLMBackend` protocol in `base`."""
