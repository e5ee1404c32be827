"""The harness's ports: a broker's listeners, the S3 server and the workers' web ports each get
one of their own, even when the system hands a just-released port out again."""

import socket

from deploy.local.harness import free_port


def test_free_port_never_gives_one_port_twice(monkeypatch):
    # what bind(0) answers, the same port thrice (below 1024: never one it really gives)
    ports = iter([1001, 1001, 1001, 1002])

    class Socket(socket.socket):
        def getsockname(self):
            return ("127.0.0.1", next(ports))
    monkeypatch.setattr(socket, "socket", Socket)
    assert [free_port(), free_port()] == [1001, 1002]
