"""The one test harness of ragex, used by every suite under tests/ and by bench/.

- ``env``: a private environment (HOME, ragex's directories, a short 0700 runtime
  dir for the sockets) — ``PrivateEnv``, ``make_env``, ``short_tmp``, ``REPO``;
- ``instance``: ``RagexInstance``, one real ``ragexd --foreground`` of either
  runtime (process or docker), with protocol clients, its log on failure, a
  clean stop and the reaping of what it leaves;
- ``client``: ``Client``, a bare protocol DEALER (to ragexd or to a worker);
- ``live``: ``LiveRagex``, a ragexd auto-started and called through ragexctl;
- ``runners``: ``ragexctl`` as a subprocess, and the one-shot worker;
- ``procs``: waiting (``poll``, ``wait_for``, a child's output line by line:
  ``StreamLines``) and finding / killing leftovers;
- ``containers``: the docker CLI, a test's containers, whether Docker tests run;
- ``trees``: the sample projects (as git checkouts when a test needs commits), a
  generated corpus, stdlib copies;
- ``chroma``: ``ChromaServer``, a real ``chroma run`` on a free port, and
  ``TokenGate``, a token-checking (and TLS-terminating) proxy in front of it (the
  shared store);
- ``tls``: ``ThrowawayCA``, a test's own certificate authority and the server
  certificates it signs (imported from ``tests.harness.tls``: it needs the
  ``cryptography`` package, which only the TLS tests do).

Everything is real: processes, signals, ZeroMQ sockets, the model, containers.
"""

from .chroma import ChromaServer, TokenGate
from .client import Client
from .env import REPO, PrivateEnv, make_env, short_tmp
from .instance import RagexInstance
from .procs import (StreamLines, cleanup_base, daemon_pid, kill_pids, kill_workers_under,
                    pid_alive, pids_in_env, poll, stop_daemon_at, wait_for, workers_under)
from .runners import index_oneshot, ragexctl, ragexctl_at_a_terminal, ragexctl_popen
from .trees import (STDLIB, commit_all, copy_stdlib, git, git_checkout, make_project, make_tree,
                    write, write_corpus, write_tree)

__all__ = ["REPO", "STDLIB", "ChromaServer", "Client", "PrivateEnv", "RagexInstance",
           "StreamLines",
           "cleanup_base", "commit_all", "copy_stdlib", "daemon_pid", "git", "git_checkout",
           "index_oneshot", "kill_pids", "kill_workers_under",
           "make_env", "make_project", "make_tree", "pid_alive", "pids_in_env", "poll",
           "ragexctl", "ragexctl_at_a_terminal", "ragexctl_popen", "short_tmp",
           "stop_daemon_at", "TokenGate", "wait_for", "write",
           "write_corpus", "write_tree", "workers_under"]
