"""The CDN service's domain (content server, router/firewall, cache): parameter values, the
content manifest, the jobs that run under Pebble, and the workloads' config renderers.

Shared by the three CDN KNF charms and the lab, so both run the same code.
"""
