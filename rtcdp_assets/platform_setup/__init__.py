"""Setup as code: what AEP and Campaign need configured to exchange the files this platform
reads and writes, derived from the project's own XDM mappings and dataset layouts so that it
cannot drift from them. It reads every wing's layouts, so it sits above them, beside the checks.
"""
