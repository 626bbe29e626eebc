"""Unsubscribes: the signed links every retention e-mail carries and the register of who
unsubscribed (see :mod:`activation.unsubscribe.links`)."""
