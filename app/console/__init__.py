"""The operator console (docs/api.md §12): a web page that answers "this customer paid, why has she no
access?" and "did the publisher's endpoint get the refund webhook?".

Server-rendered (Jinja2, every value escaped), no script, one stylesheet of ours, charts drawn as
inline SVG: it works offline and needs no build step. It sits at the routers' level of the house:
its statements only read (`repository`), its actions go through the services the API uses, and
its requests own their transactions.
"""
