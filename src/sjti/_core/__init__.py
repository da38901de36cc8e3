"""The pure core of sjti: no sockets, no database, no framework, no wall clock.

Everything here takes its inputs as arguments (``now`` included) so it can serve the sync
and the async stacks alike and be tested without I/O.
"""
