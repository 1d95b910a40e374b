"""workbench: a Jupyter-centric research workbench for token-level LLM research."""

__version__ = "0.1.0"
