"""``kvscope.cli.common.serve``, the one serve loop of ``kvscope memory`` and ``kvscope view``: Ctrl+C ends
the command with exit code 130 and one line, and the server's socket is closed whatever ends the loop."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli


@pytest.fixture
def interrupted(monkeypatch):
    """Servers whose loop raises ``KeyboardInterrupt`` at once; the list holds each server made."""
    from kvscope.kit import pages

    made = []

    def serve_forever(self, *args, **kwargs):
        made.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(pages.QuietServer, "serve_forever", serve_forever)
    return made


def test_ctrl_c_while_serving_memory_exits_130_and_closes_the_socket(interrupted, capsys):
    code, out, err = run_cli(["memory", "--serve", "--no-browser"], capsys)
    assert code == 130 and out == "", err
    assert err.splitlines()[0].startswith("kvscope memory: serving http://127.0.0.1:")
    assert err.splitlines()[1:] == ["kvscope memory: stopped"]
    assert len(interrupted) == 1 and interrupted[0].socket.fileno() == -1


def test_any_end_of_the_loop_closes_the_server(capsys):
    from kvscope.cli.common import serve

    class Server:
        server_address, closed = ("127.0.0.1", 8), False

        def serve_forever(self):
            raise RuntimeError("boom")

        def server_close(self):
            self.closed = True

    server = Server()
    with pytest.raises(RuntimeError, match="boom"):
        serve(server, "view", open_browser=False, query="?a=1")
    assert server.closed and "http://127.0.0.1:8/?a=1" in capsys.readouterr().err
