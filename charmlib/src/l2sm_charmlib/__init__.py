"""Juju/Kubernetes glue shared by the charms (lightkube adapter). Staged into each charm's lib/.

Kept apart from l2sm_core, which must stay free of Kubernetes client imports for the lab.
"""
