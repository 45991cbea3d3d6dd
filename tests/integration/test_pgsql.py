"""pgsql: tables through `tern map query pgsql:/path KEY`, against a
throwaway PostgreSQL cluster (pg_fixture.PgCluster): a row is found as soon
as it is inserted and not found once deleted (exit 1); a dead first host is
passed over for the live one; a stopped database is a temporary error (exit
2, with the reason), and the table answers again once it is back. The
servers' use of pgsql: tables is test_pgsql_hosting.py."""
import subprocess

import pytest

from conftest import SANITIZER_RE, TERN_BIN, free_port
from pg_fixture import PgCluster, pg_bin

ALIAS_QUERY = "SELECT goto FROM alias WHERE address = '%s'"


@pytest.fixture(scope="module")
def pg():
    if not pg_bin("initdb"):
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    cluster = PgCluster(port=free_port())
    cluster.sql("CREATE TABLE alias (address text NOT NULL, goto text NOT NULL)")
    yield cluster
    cluster.cleanup()


def map_query(cf_path, *keys):
    r = subprocess.run([TERN_BIN, "map", "query", f"pgsql:{cf_path}", *keys], capture_output=True,
                       timeout=60, env={"ASAN_OPTIONS": "detect_leaks=1", "PATH": "/usr/bin:/bin"})
    out, err = r.stdout.decode(), r.stderr.decode()
    assert not SANITIZER_RE.search(out + err), out + err
    return r.returncode, out, err


@pytest.fixture
def cf(pg, tmp_path):
    """Writes a table file for pg; returns its path."""
    def make(query=ALIAS_QUERY, **settings):
        path = tmp_path / "pgsql-virtual.cf"
        path.write_text(pg.cf_text(query, **settings))
        return path
    return make


def test_insert_found_delete_not_found(pg, cf):
    path = cf()
    assert map_query(path, "new@example.com")[0] == 1
    pg.sql("INSERT INTO alias VALUES ('new@example.com', 'box@example.org')")
    rc, out, err = map_query(path, "New@Example.com")
    assert (rc, out) == (0, "box@example.org\n"), err
    pg.sql("INSERT INTO alias VALUES ('new@example.com', 'second@example.org')")
    rc, out, _ = map_query(path, "new@example.com")
    assert rc == 0 and sorted(out.strip().split(",")) == ["box@example.org", "second@example.org"]
    pg.sql("DELETE FROM alias WHERE address = 'new@example.com'")
    assert map_query(path, "new@example.com")[:2] == (1, "")


def test_quotes_in_keys_are_data(pg, cf):
    pg.sql("INSERT INTO alias VALUES ('o''hara@example.com', 'oh@example.org')")
    path = cf()
    assert map_query(path, "o'hara@example.com")[:2] == (0, "oh@example.org\n")
    assert map_query(path, "x' OR '1'='1")[0] == 1
    assert pg.sql("SELECT count(*) FROM alias").strip() != "0"


def test_dead_first_host_then_live(pg, cf):
    pg.sql("INSERT INTO alias VALUES ('hosts@example.com', 'ok@example.org')")
    dead = free_port()
    path = cf(hosts=f"inet:127.0.0.1:{dead}, 127.0.0.1:{pg.port}")
    rc, out, err = map_query(path, "hosts@example.com")
    assert (rc, out) == (0, "ok@example.org\n"), err
    assert f"127.0.0.1:{dead}" in err or "Connection refused" in err


def test_database_down_is_temporary_then_back(pg, cf):
    pg.sql("INSERT INTO alias VALUES ('down@example.com', 'up@example.org')")
    path = cf()
    assert map_query(path, "down@example.com")[:2] == (0, "up@example.org\n")
    pg.stop()
    try:
        rc, out, err = map_query(path, "down@example.com")
        assert rc == 2 and out == "", err
        assert "temporary error" in err and "no database host answered" in err, err
        assert "Connection refused" in err, err
    finally:
        pg.start()
    assert map_query(path, "down@example.com")[:2] == (0, "up@example.org\n")


def test_domain_filter_and_result_format(pg, cf):
    pg.sql("INSERT INTO alias VALUES ('fmt@example.com', 'mx.example.org')")
    path = cf(domain="example.com", result_format="smtp:[%s]")
    assert map_query(path, "fmt@example.com")[:2] == (0, "smtp:[mx.example.org]\n")
    # not in the domain list, or no domain: not queried, not found
    assert map_query(path, "fmt@example.net")[0] == 1
    assert map_query(path, "fmt")[0] == 1


def test_bad_file_names_line(tmp_path):
    path = tmp_path / "bad.cf"
    path.write_text("hosts = 127.0.0.1\nquery = SELECT '%x'\n")
    rc, _, err = map_query(path, "k")
    assert rc == 2 and f"{path}:2: query: unknown expansion" in err, err

