"""What a run asks for, in pure Python: specs, layer shapes and parameter counts, the training config, preflight
checks, recipes. Imports only the root modules (contracts in pyproject.toml)."""
