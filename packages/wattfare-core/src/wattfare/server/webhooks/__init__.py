"""Telling apps and members what changed: signed webhook deliveries and threshold emails, sent off the hot path.

The store writes each event with the change it announces (`store.sql.outbox`); this room sends them. Every
process runs one `Deliverer` loop, which claims what is due (one process per delivery, by lease), signs it the
Standard Webhooks way (`signing`), posts it, and reschedules a failure on `schedule.RETRY_DELAYS`; the same
loop sends members' threshold emails (`alerts`). `endpoints` is what the console, the API and the CLI share to
register endpoints and rotate their secrets.
"""
