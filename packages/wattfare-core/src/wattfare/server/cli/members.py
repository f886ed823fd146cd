"""`wattfare members`: list members, reset a member's password (argon2id, as at sign-up)."""

from __future__ import annotations

import sys

import click

from wattfare.server.access.passwords import hash_password, password_problem
from wattfare.server.cli.database import load_settings, with_store
from wattfare.server.cli.output import moment, show_rows, success
from wattfare.server.cli.params import EmailAddress
from wattfare.server.store import Store
from wattfare.server.store.account_records import Member


@click.group()
def members() -> None:
    """Manage members (the people who fund apps' AI spend)."""


@members.command("list")
def members_list() -> None:
    """List every member: id, email, when they signed up."""

    async def run(store: Store) -> list[Member]:
        return await store.list_members()

    found = with_store(load_settings(), run)
    rows = [(m.id, m.email, moment(m.created_at)) for m in found]
    show_rows(("ID", "EMAIL", "CREATED"), rows, empty="No members yet.")


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    else:
        password = str(click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True))
    problem = password_problem(password)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="the password")
    return password


@members.command("reset-password")
@click.argument("email", type=EmailAddress())
@click.option(
    "--password-stdin", is_flag=True, help="Read the new password from standard input instead of prompting for it."
)
def members_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password for the member with EMAIL and sign them out of every browser.

    Prompts for the password twice (hidden), or reads it whole from standard input with --password-stdin
    (one trailing newline is dropped). Passwords are hashed with argon2id, as at sign-up.
    """
    settings = load_settings()

    async def find(store: Store) -> str | None:
        found = await store.member_credentials(email)
        return found.member.id if found else None

    member_id = with_store(settings, find)
    if member_id is None:
        raise click.ClickException(f"no member has the email {email} (see `wattfare members list`)")
    password = _new_password(password_stdin)

    async def reset(store: Store) -> bool:
        return await store.set_member_password(member_id, await hash_password(password))

    if not with_store(settings, reset):
        raise click.ClickException(f"the member {email} was deleted meanwhile")
    success(f"New password set for {email}; their browser sessions were signed out.")
