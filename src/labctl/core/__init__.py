"""The pure core: topology model, loading and validation, naming, planning.

Nothing under labctl.core imports docker, pyroute2 or ovs.
"""
