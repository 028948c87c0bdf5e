"""A real DNS server on 127.0.0.1 for tests: UDP, answers TXT queries from a dict.

Domain verification asks DNS through the ``dns_nameservers`` setting; pointing it here tests
the whole path (dnspython's resolver, the wire format, timeouts) with no outside network.
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class TxtServer:
    """Serves ``records`` ({name: [TXT strings]}); names it does not hold get NXDOMAIN.
    ``silent`` names get no answer at all (a DNS that times out)."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.silent: set[str] = set()
        self.queries: list[str] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        self.nameserver = f"127.0.0.1:{self.port}"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def publish(self, name: str, *values: str) -> None:
        self.records[name.lower().rstrip(".")] = list(values)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                data, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001 - junk: a real server drops it too, whatever the parser raises
                continue
            question = query.question[0]
            name = question.name.to_text().lower().rstrip(".")
            self.queries.append(name)
            if name in self.silent:
                continue
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            values = self.records.get(name)
            if values is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.TXT:
                quoted = ['"' + v.replace('"', '\\"') + '"' for v in values]
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "TXT", *quoted))
            self._socket.sendto(response.to_wire(), client)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(2)
        self._socket.close()
