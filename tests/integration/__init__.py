"""The integration suite on a real Juju controller and Kubernetes cluster (docs/decisions/0015)."""
