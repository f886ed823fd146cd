"""A demo app that uses Wattfare: a chat page with a "Connect AI budget" button, funded by each user."""
