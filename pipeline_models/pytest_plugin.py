"""pytest fixtures for code that uses pipeline_models (registered through the `pytest11` entry point)."""
