"""The built-in Mailchimp plugin (see docs/mailchimp.md).

    settings.py   the [mailchimp] table, validated into MailchimpSettings
    client.py     the REST client (httpx, retries, batches) and its exceptions
    source.py     supporters and supporter_stats, as the plan reads them
    state.py      the plugin's own tables: members we know, the pull cursor
    plan.py       the pure diff: what to create, update, tag, untag, unsubscribe, archive, skip
    push.py       pull, plan, apply in bulk, record per-member results
    plugin.py     the hooks
"""
