"""``logarchive serve``: the archive answers over the source systems' own download APIs (seed 000
training logs, seed 002 workflow job raw logs), a JSON API and a web UI. See docs/serve.md.

Modules: :mod:`.settings` (the ``[serve]`` table; no web dependency), :mod:`.index` (SQLite index
of the manifests), :mod:`.logs` (a run's log in any format, streamed and checked against its
manifest), :mod:`.auth`, :mod:`.seeds`, :mod:`.api`, :mod:`.ui` and :mod:`.app` (Starlette, from
the ``[serve]`` extra), :mod:`.runner` (uvicorn).
"""
