"""The HTTP routers: thin handlers that parse, call one service function and shape the answer."""
