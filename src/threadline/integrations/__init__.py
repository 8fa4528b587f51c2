"""Threadline inside other tools: ``langchain`` (a chat history and a retriever) and ``mcp``
(an MCP server). Each needs its extra: ``pip install 'threadline[langchain]'`` or ``[mcp]``."""
