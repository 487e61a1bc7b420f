"""Tests of `proxy.upstream`, the lean OpenAI-compatible model."""
