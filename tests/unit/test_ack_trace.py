"""tests/system/ack_trace.py reads the DHCP replies out of strace's lines: every message a
sendmmsg sent (its return value counts them from the first), a sendmsg's one buffer, a
sendto's; nothing out of a failed call.  The lines are strace 6.1's, as captured on this
machine from the C helper's send_batch (``-ff -ttt -T -xx -s 65535 -y``), the buffers
shortened."""

from __future__ import annotations

from tests.system.ack_trace import parse_line

SOCKET = r"4<\x73\x6f\x63\x6b\x65\x74\x3a\x5b\x38\x36\x30\x33\x30\x34\x37\x5d>"  # socket:[8603047]


def _message(iov: str, sent: int | None) -> str:
    length = len(iov) // 4
    return ("{msg_hdr={msg_name={sa_family=AF_INET, sin_port=htons(34993), sin_addr=inet_addr("
            r'"\x31\x32\x37\x2e\x30\x2e\x30\x2e\x31")}, msg_namelen=16, msg_iov=[{iov_base="'
            f'{iov}", iov_len={length}}}], msg_iovlen=1, msg_controllen=0, msg_flags=0}}'
            + (f", msg_len={sent}}}" if sent is not None else "}"))


def test_a_sendmmsg_yields_the_messages_it_sent_and_not_the_rest():
    messages = [_message(r"\x02\x01\x61\x62\x63", 5), _message(r"\x02\x02\x64\x65\x22\x66", 6),
                _message(r"\x78", None)]
    line = (f"1796526553.730681 sendmmsg({SOCKET}, [{', '.join(messages)}], 3, MSG_DONTWAIT)"
            " = 2 <0.000157>\n")
    calls = parse_line(line)
    assert [call.data for call in calls] == [b"\x02\x01abc", b'\x02\x02de"f']
    assert {(call.name, call.fd, call.path, call.time, call.returned) for call in calls} == {
        ("sendmmsg", 4, "socket:[8603047]", 1796526553.730681, 1796526553.730681 + 0.000157)}


def test_a_failed_sendmmsg_or_sendmsg_yields_nothing():
    unsent = _message(r"\x78", None)
    assert parse_line(f"1796526553.731147 sendmmsg({SOCKET}, [{unsent}], 1, "
                      "MSG_DONTWAIT) = -1 EINVAL (Invalid argument) <0.000032>\n") == []
    assert parse_line(f"1796526553.731270 sendmsg({SOCKET}, {{msg_iov=[{{iov_base=\"\\x78\", "
                      "iov_len=1}], msg_iovlen=1}, MSG_DONTWAIT) = -1 EINVAL (Invalid argument)"
                      " <0.000033>\n") == []


def test_sendmsg_and_sendto_yield_their_buffer():
    sendmsg = (f"1.5 sendmsg({SOCKET}, {{msg_iov=[{{iov_base=\"\\x02\\x05\", iov_len=2}}], "
               "msg_iovlen=1}, 0) = 2 <0.000010>\n")
    sendto = f'2.5 sendto({SOCKET}, "\\x02\\x06", 2, 0, NULL, 0) = 2 <0.000020>\n'
    assert [(c.name, c.data) for c in parse_line(sendmsg) + parse_line(sendto)] == [
        ("sendmsg", b"\x02\x05"), ("sendto", b"\x02\x06")]
