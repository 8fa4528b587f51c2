"""The JSON shapes Threadline shows (Pydantic), separate from the tables: request and
response bodies of the REST API, and the objects outgoing webhooks carry, which are the
API's own read models so a subscriber sees exactly what a GET would answer."""
