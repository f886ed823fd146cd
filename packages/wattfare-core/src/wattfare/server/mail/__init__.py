"""Email to members: what a message is, the mailers that send it (SMTP, or the dev outbox), and sending it later.

Nothing here knows why a message is sent: the pages compose letters (`letters`) and hand them to the `Courier`,
which sends them off the request's critical path through whichever `Mailer` the settings chose. No prompt or
completion is ever put in an email.
"""
