"""The email sink: retention campaigns from ``mart_email_targets`` through Amazon SES.

What goes to whom is declared in the repository: ``activation/campaigns.yml`` maps each segment
of the mart to a template and a cadence, and each template is a folder of
``activation/templates/``. ``peak activate email --deploy-templates`` creates or updates them in
SES; a run refuses to send a campaign whose template in SES differs from the repository's. Each
(campaign, member, period) goes out at most once, even across a crash; members on the SES
suppression list, on our unsubscribe list or not opted in are skipped.

One job per module, each importing only the ones above it:

- :mod:`~activation.email.settings`: the sink's name, its campaigns and templates folders, and
  the botocore config (its settings are :class:`peak.core.settings.EmailSettings`);
- :mod:`~activation.email.errors`: the sink's errors;
- :mod:`~activation.email.mart`: the mart's columns and segments, a value as template text;
- :mod:`~activation.email.campaigns`: ``campaigns.yml``;
- :mod:`~activation.email.templates`: the template compiler (and why it escapes as it does);
- :mod:`~activation.email.ledger`: the send ledger (at most once per period);
- :mod:`~activation.email.plan`: who is due which campaign, and why the others are skipped;
- :mod:`~activation.email.messages`: the bulk requests (and the dry run's rendered emails);
- :mod:`~activation.email.ses`: SES clients, and the one call loop (retries, error classes);
- :mod:`~activation.email.reconcile`: what SES's answers mean for the ledger;
- :mod:`~activation.email.sink`: ``EmailSink``: a run, the send loop, template deployment.

Pacing and retries come from :mod:`activation.pacing`, the ledger's journal from
:mod:`activation.journal`, the signed unsubscribe links and the do-not-market register from
:mod:`activation.unsubscribe`. This package's own namespace holds the names other stages use.
"""

from activation.email.sink import EmailSink, deploy_templates

__all__ = ["EmailSink", "deploy_templates"]
