"""Shared layers written once: graph, ST-GCN block, flow steps, priors."""
