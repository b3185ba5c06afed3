"""The throwaway PostgreSQL cluster lake tests run on starts even when its port is taken first."""

from __future__ import annotations

import socket

import psycopg

from tests.postgres_cluster import PostgresCluster


def test_a_cluster_whose_port_was_taken_first_starts_on_another() -> None:
    """Another test worker can bind the port a cluster found free before the cluster does."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        cluster = PostgresCluster()
        cluster.port = held.getsockname()[1]
        cluster.start()
        try:
            assert cluster.port != held.getsockname()[1]
            with psycopg.connect(cluster.url(), autocommit=True) as con:
                assert con.execute("SELECT 1").fetchone() == (1,)
        finally:
            cluster.stop()
