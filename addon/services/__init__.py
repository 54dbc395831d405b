"""Generation services, one module each; `base` holds the contract."""
