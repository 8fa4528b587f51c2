"""The agent: context from the store, model calls, the reply loop, suggestions and scores.

- ``prompt``: an agent's system prompt rendered for one conversation;
- ``context``: a conversation's context window read from the store page by page;
- ``llm``: chat completions against any OpenAI-compatible endpoint;
- ``tools``: the built-in tools and webhook tools an agent's model may call;
- ``loop``: one reply (context, model, tools, then send or suggest);
- ``suggestions``: drafts people approve, edit or reject;
- ``scoring``: sentiment, satisfaction, outcome and summaries;
- ``analytics`` and ``sessions``: figures computed from what is stored.

Nothing here imports ``api``.
"""
