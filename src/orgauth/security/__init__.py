"""Pure security building blocks: passwords, tokens, devices, headers, rate limits."""
