"""Campaign's code tables that more than one wing reads (docs/formats.md §b3, §b4).

The Campaign → AEP datasets map them to XDM; the reach funnel of the AEP → Campaign side counts
deliveries and clicks with the same meanings.
"""

# broadLog delivery status codes with a public source; other instances may use more: add them
# to settings.broadlog_status_codes.
BROADLOG_STATUS_LABELS = {"1": "sent", "2": "failed", "6": "pending", "7": "cancelled"}

# trackingLog URL types.
TRACKING_URL_TYPES = {
    "1": "email_click",
    "2": "open",
    "3": "opt_out",
    "4": "web",
    "5": "transaction",
    "6": "mirror_page",
}
