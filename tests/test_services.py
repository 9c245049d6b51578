"""The test-server helpers start real servers that clients can use."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis
import sqlalchemy

from tests.services import PostgresServer, RedisServer, free_port, start_redis


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.redis
def test_redis_ping(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping() is True
        client.set("followup:test", "内定")
        assert client.get("followup:test") == "内定".encode()
    finally:
        client.close()


@pytest.mark.redis
def test_redis_restart_keeps_port_and_data(tmp_path: Path) -> None:
    server = start_redis(tmp_path, appendonly=True)
    try:
        port, url = server.port, server.url
        client = redis.Redis.from_url(url)
        client.rpush("queue", "a", "b")
        client.close()

        server.restart()  # clean shutdown
        assert (server.port, server.url) == (port, url)
        client = redis.Redis.from_url(url)
        assert client.lrange("queue", 0, -1) == [b"a", b"b"]
        client.rpush("queue", "c")
        client.close()

        server.restart(kill=True)  # crash: the AOF still has every acknowledged write
        client = redis.Redis.from_url(url)
        assert client.lrange("queue", 0, -1) == [b"a", b"b", b"c"]
        client.close()
    finally:
        server.stop()
    assert not _accepts(port)


@pytest.mark.redis
def test_redis_client_reconnects_after_restart(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    client = redis.Redis.from_url(server.url, retry_on_error=[redis.ConnectionError])
    try:
        client.set("k", "v")
        server.stop()
        assert not _accepts(server.port)
        server.start()
        assert client.ping() is True
        assert client.get("k") is None  # no persistence without appendonly
    finally:
        client.close()
        server.stop()


@pytest.mark.postgres
def test_postgres_select_1(postgres_server: PostgresServer) -> None:
    assert postgres_server.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sqlalchemy.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
            assert conn.execute(sqlalchemy.text("SHOW server_encoding")).scalar_one() == "UTF8"
            assert conn.execute(sqlalchemy.text("SHOW fsync")).scalar_one() == "off"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_create_database(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("svc_test_db")
    assert url.endswith("/svc_test_db")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE t (name text)"))
            conn.execute(sqlalchemy.text("INSERT INTO t VALUES ('山田太郎')"))
            assert conn.execute(sqlalchemy.text("SELECT current_database()")).scalar_one() == "svc_test_db"
            assert conn.execute(sqlalchemy.text("SELECT name FROM t")).scalar_one() == "山田太郎"
    finally:
        engine.dispose()
    # re-creating gives an empty database, even with a connection still open
    engine = sqlalchemy.create_engine(url)
    try:
        conn = engine.connect()
        url2 = postgres_server.create_database("svc_test_db")
        conn.invalidate()
        assert url2 == url
        with engine.connect() as conn2:
            assert conn2.execute(sqlalchemy.text("SELECT to_regclass('t')")).scalar_one() is None
    finally:
        engine.dispose()
