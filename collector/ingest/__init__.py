"""Ingest: from a receiver's decoded batch to an acknowledgement and, later, the store.

pipeline.py composes the parts; ack_writer.py, ledger.py and folder.py are the three stages;
ingest_log.py is the durable log; the rest are the small values and rules they share.
"""
