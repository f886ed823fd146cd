"""What Wattfare writes to members: each letter a function of plain values, with no prompt or completion in any."""

from __future__ import annotations

from wattfare.server.mail.message import Email, one_line


def password_reset_letter(to: str, link: str, minutes: int) -> Email:
    """The link that lets a member choose a new password."""
    text = (
        "Someone (we hope you) asked to reset the password of your Wattfare account.\n\n"
        f"Choose a new password here within {minutes} minutes:\n\n{link}\n\n"
        "The link works once. Choosing a new password signs you out of every browser.\n"
        "If you did not ask for this, ignore this email: your password stays as it is.\n"
    )
    return Email(to, "Reset your Wattfare password", text)


def app_connected_letter(to: str, app_name: str, cap_text: str, account_url: str) -> Email:
    """Tells a member an app was connected to their budget, and where to change or revoke it."""
    name = one_line(app_name)
    text = (
        f"You connected {name} to your Wattfare budget.\n\n"
        f"{name} may spend up to {cap_text} a month from your budget.\n\n"
        f"To change its cap or revoke its access, open your account:\n\n{account_url}\n\n"
        "If this was not you, revoke it there and change your password.\n"
    )
    return Email(to, f"{name} was connected to your Wattfare budget", text)


def threshold_letter(to: str, app_name: str, percent: int, spent_text: str, cap_text: str, account_url: str) -> Email:
    """Tells a member one app's spend this month reached the share of its cap they asked to hear about."""
    name = one_line(app_name)
    stopped = "It can spend nothing more until the month ends" if percent >= 100 else "It stops at its cap"
    text = (
        f"{name} has spent {spent_text} of the {cap_text} a month you allowed it ({percent}%).\n\n"
        f"{stopped}, unless you raise the cap. To raise it, lower it or revoke the app, open your account:\n\n"
        f"{account_url}\n\n"
        "You get this email once a month per app, at the share you chose there (or never, if you turn it off).\n"
    )
    return Email(to, f"{name} reached {percent}% of its monthly cap", text)
