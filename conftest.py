"""Repository root conftest: marks the rootdir (pyproject.toml holds the [tool.clue] defaults)."""
