"""`make bench-peers`: agent-proxy against other gateways (Portkey, LiteLLM) and a byte relay, on
the same mock upstream and load generator, interleaved in one run (`python -m peers --help`)."""
