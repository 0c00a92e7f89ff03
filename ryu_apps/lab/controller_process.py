"""A ryu-manager controller in a subprocess, with its config, REST tokens and TLS files."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ryu_apps.lab.processes import (free_tcp_port, ryu_manager_command, stop_process,
                                    wait_for_text, wait_until_listening)
from ryu_apps.lab.project import DEFAULT_TEMPLATES, REPO_ROOT

if TYPE_CHECKING:
    from ryu_apps.tls.pki import Pki


def lab_pki(directory: Optional[Path] = None) -> Pki:
    """The PKI the lab's controllers and switches use, made if missing (idempotent)."""
    from ryu_apps.tls import pki

    return pki.init(directory)


def ovsdb_ssl_options(pki, trusts: tuple = ("controller",)) -> str:
    """``[dynprov]`` lines for a controller's ssl: OVSDB remotes (store: the controller CA;
    servers' OVSDB: the switch CA; both: both)."""
    from ryu_apps.tls.ovsdb_ssl import controller_files

    files = controller_files(pki, trusts)
    return (f"ovsdb_ssl_private_key = {files.private_key}\n"
            f"ovsdb_ssl_certificate = {files.certificate}\n"
            f"ovsdb_ssl_ca_cert = {files.ca_cert}\n")


class ControllerProcess:
    """``ryu-manager ryu_apps.provisioner`` in a subprocess, logging to a file.

    ``tls``: OpenFlow over mutual TLS on ``of_port`` with the lab PKI
    (``pki_dir``, default that of ``dynprov pki init``); Ryu then listens for
    nothing else. ``framework`` (``ryu``, ``os-ken``): launch with
    ``dynprov controller --framework`` and the same flags instead.
    """

    def __init__(self, templates: Path = DEFAULT_TEMPLATES,
                 scheme: str = "prefix/16", of_port: Optional[int] = None,
                 wsapi_port: Optional[int] = None, workdir: Optional[Path] = None,
                 extra_options: str = "", verbose: bool = True,
                 rest_https: bool = False, tls: bool = False,
                 pki_dir: Optional[Path] = None, framework: Optional[str] = None) -> None:
        self.pki = lab_pki(pki_dir) if tls else None
        self.framework = framework
        self.of_port = of_port or free_tcp_port()
        self.wsapi_port = wsapi_port or free_tcp_port()
        self.metrics_port = free_tcp_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dynprov-"))
        self.config_file = self.workdir / "dynprov.conf"
        self.log_file = self.workdir / "controller.log"
        self.verbose = verbose
        rest_options = self._rest_security(rest_https)
        self.config_file.write_text(
            "[DEFAULT]\n"
            "wsapi_host = 127.0.0.1\n"
            "ofp_listen_host = 127.0.0.1\n"
            "[dynprov]\n"
            f"templates = {templates}\n"
            f"identifier_scheme = {scheme}\n"
            "lldp_interval = 1.0\n"
            f"metrics_port = {self.metrics_port}\n" + rest_options + extra_options)
        self.process: Optional[subprocess.Popen] = None

    # -- the REST API: tokens (admin and reader), HTTPS if asked ----------------------
    def _rest_security(self, https: bool) -> str:
        """Write the REST tokens file (and a self-signed certificate); their options."""
        from ryu_apps.rest.auth import new_secret

        self.tokens = {role: new_secret() for role in ("admin", "reader")}
        self.tokens_file = self.workdir / "rest-tokens"
        descriptor = os.open(self.tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.writelines(f"{role} lab-{role} {token}\n" for role, token in self.tokens.items())
        os.chmod(self.tokens_file, 0o600)
        options = f"rest_tokens = {self.tokens_file}\n"
        self.rest_cert: Optional[Path] = None
        if https:
            self.rest_cert, key = self.self_signed_certificate(self.workdir, "rest")
            options += f"rest_cert = {self.rest_cert}\nrest_key = {key}\n"
        return options

    @staticmethod
    def self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
        """A self-signed certificate for 127.0.0.1 and localhost (openssl): (cert, key)."""
        cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2",
                        "-subj", f"/CN=dynprov {name}",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        return cert, key

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API (https when started with ``rest_https``)."""
        scheme = "https" if self.rest_cert else "http"
        return f"{scheme}://127.0.0.1:{self.wsapi_port}"

    def rest_target(self, role: str = "admin"):
        """URL, ``role``'s token and CA of the REST API, for ``ryu_apps.cli.rest_client``
        and ``ryu_apps.cli.notify.send``."""
        from ryu_apps.cli.rest_client import RestTarget

        return RestTarget(self.rest_url, self.tokens[role],
                          str(self.rest_cert) if self.rest_cert else None)

    def rest_headers(self, role: str = "admin") -> dict:
        """The Authorization header of ``role``'s token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def rest(self, method: str, path: str, body=None, role: str = "admin",
             timeout: float = 20.0):
        """(status, decoded JSON answer) of one REST call with ``role``'s token."""
        from ryu_apps.cli.rest_client import call

        return call(self.rest_target(role), method, path, body, timeout)

    def rest_cli_args(self, role: str = "admin") -> list[str]:
        """``dynprov`` options that reach this controller with ``role``'s token."""
        token_file = self.workdir / f"token-{role}"
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(self.tokens[role] + "\n")
        args = ["--controller", self.rest_url, "--token-file", str(token_file)]
        return args + (["--ca-cert", str(self.rest_cert)] if self.rest_cert else [])

    def command(self) -> list[str]:
        """The exact launch command, as an operator would type it."""
        launcher = [ryu_manager_command()] if self.framework is None else [
            str(Path(ryu_manager_command()).parent / "dynprov"), "controller",
            "--framework", self.framework]
        return [*launcher, "--config-file", str(self.config_file),
                *self.openflow_options(),
                "--wsapi-port", str(self.wsapi_port),
                *(["--verbose"] if self.verbose else []), "ryu_apps.provisioner"]

    def openflow_options(self) -> list[str]:
        """Where and how ryu-manager listens for switches (TLS: with the PKI's files)."""
        if self.pki is None:
            return ["--ofp-tcp-listen-port", str(self.of_port)]
        return ["--ofp-ssl-listen-port", str(self.of_port),
                "--ctl-privkey", str(self.pki.key("controller")),
                "--ctl-cert", str(self.pki.cert("controller")),
                "--ca-certs", str(self.pki.switch_ca)]

    def start(self, timeout: float = 20.0) -> "ControllerProcess":
        """Start and wait until the OpenFlow port accepts connections."""
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONWARNINGS="ignore")
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                cwd=str(REPO_ROOT), env=env, start_new_session=True)
        wait_until_listening(self.process, self.of_port, timeout, "controller", self.log)
        return self

    def log(self) -> str:
        """Everything the controller printed so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the log without Ryu's per-event ``EVENT`` lines
        (``--verbose`` prints one per timer tick, some cut short by interleaved
        writes), for a failure's message."""
        kept = [line for line in self.log().splitlines()
                if not line.lstrip().startswith(("EVENT ", "ntOFP", "ventOFP"))]
        return "controller log (tail):\n" + "\n".join(kept[-lines:])

    def wait_for_log(self, text: str, timeout: float = 15.0, count: int = 1) -> bool:
        """Wait until ``text`` appears ``count`` times in the log."""
        return wait_for_text(self.log, text, count, timeout)

    def stop(self) -> None:
        """Stop the controller (SIGTERM, then SIGKILL) by its PID."""
        stop_process(self.process)


def tls_verified(controller: ControllerProcess) -> int:
    """How many switch connections the controller accepted over TLS so far."""
    return len(re.findall(r"OpenFlow TLS: \S+ verified: ", controller.log()))
