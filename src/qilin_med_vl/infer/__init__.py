"""Using a model: the Engine and its shells (terminal chat, OpenAI-compatible server, web page)."""
