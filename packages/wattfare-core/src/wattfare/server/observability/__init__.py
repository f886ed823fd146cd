"""Seeing a running Wattfare: Prometheus metrics, one structured log line per request, the request's own record.

The room sits below every other room of the server (it imports none of them), so the store, the meter, the
proxy and the error envelope can each note what they know in a line: `request_log` keeps the request's record
and writes its line, `metrics` counts, `middleware` times each request and closes its record. README,
"Operating Wattfare", lists what an operator reads from them.
"""
