"""The local PostgreSQL and S3 servers that tests and the stack start: they answer, they are
isolated per test, and stopping them leaves no process and no port behind."""

import socket

import boto3
import psycopg
import pytest
import s3fs

from scripts.local_services import S3_CREDENTIALS, alive, start_postgres, start_s3


def _port_is_free(port: int) -> bool:
    """Whether a new server could listen there (as servers do, past connections in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_the_cluster_answers_on_loopback_in_its_reelflow_database(postgres_cluster):
    with psycopg.connect(postgres_cluster.url) as con:
        database, address = con.execute(
            "SELECT current_database(), host(inet_server_addr())").fetchone()
    assert (database, address) == ("reelflow", "127.0.0.1")
    assert alive(postgres_cluster.pid)


def test_two_fresh_databases_do_not_share_tables(postgres_cluster, postgres_url):
    other = postgres_cluster.create_database("t_other_fresh")
    try:
        with psycopg.connect(postgres_url) as con:
            con.execute("CREATE TABLE clip (id int)")
        with psycopg.connect(other) as con:
            tables = con.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'clip'")
            assert tables.fetchone() == (0,)
        assert postgres_url != other and postgres_url != postgres_cluster.url
    finally:
        postgres_cluster.drop_database("t_other_fresh")


def test_dropping_a_database_ends_the_connections_left_open(postgres_cluster):
    url = postgres_cluster.create_database("t_left_open")
    left_open = psycopg.connect(url)
    try:
        postgres_cluster.drop_database("t_left_open")
        with psycopg.connect(postgres_cluster.url) as con:
            found = con.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                                ("t_left_open",)).fetchone()
        assert found == (0,)
    finally:
        left_open.close()


def test_stop_ends_the_postmaster_frees_the_port_and_removes_the_folder(postgres_cluster):
    cluster = start_postgres(fsync=False)  # postgres_cluster: skipped where none is installed
    assert alive(cluster.pid) and not _port_is_free(cluster.port)
    cluster.stop()
    assert not alive(cluster.pid)
    assert _port_is_free(cluster.port)
    assert not cluster.folder.exists()


@pytest.fixture(scope="module")
def local_s3(tmp_path_factory):
    s3 = start_s3(tmp_path_factory.mktemp("moto"))
    s3.create_bucket("reelflow")
    yield s3
    s3.stop()


def test_an_object_put_through_boto3_reads_back(local_s3):
    client = boto3.client("s3", endpoint_url=local_s3.endpoint_url, **S3_CREDENTIALS)
    client.put_object(Bucket="reelflow", Key="boto3/clip.mp4", Body=b"\x00clip")
    assert client.get_object(Bucket="reelflow", Key="boto3/clip.mp4")["Body"].read() == \
        b"\x00clip"


def test_an_object_put_through_s3fs_reads_back_through_boto3(local_s3):
    fs = s3fs.S3FileSystem(key="testing", secret="testing", skip_instance_cache=True,
                           client_kwargs={"endpoint_url": local_s3.endpoint_url,
                                          "region_name": "us-east-1"})
    fs.pipe("reelflow/s3fs/part-0.parquet", b"PAR1")
    assert fs.cat("reelflow/s3fs/part-0.parquet") == b"PAR1"
    client = boto3.client("s3", endpoint_url=local_s3.endpoint_url, **S3_CREDENTIALS)
    assert client.get_object(Bucket="reelflow", Key="s3fs/part-0.parquet")["Body"].read() == \
        b"PAR1"


def test_stopping_the_s3_server_ends_its_process_and_frees_its_port(tmp_path):
    s3 = start_s3(tmp_path)
    port = int(s3.endpoint_url.rsplit(":", 1)[1])
    s3.stop()
    assert not alive(s3.pid)
    assert _port_is_free(port)
