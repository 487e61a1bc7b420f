"""Tests of proxy.mock_upstream."""
