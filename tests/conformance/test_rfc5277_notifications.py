"""RFC 5277 notifications with interleave; RFC 6470 netconf-config-change."""

from __future__ import annotations

import pytest
from ncclient.operations import RPCError

from tests.conformance.conftest import dns_of, pool_edit, restore


def test_commit_sends_netconf_config_change_rfc6470(device):
    listener, editor = device.connect(), device.connect()
    listener.create_subscription()
    editor.edit_config(target="candidate", config=pool_edit("10.10.10.80"))
    editor.commit()
    notification = listener.take_notification(timeout=10)
    assert notification is not None
    xml = notification.notification_xml
    assert "netconf-config-change" in xml and "<eventTime>" in xml
    assert f"<session-id>{editor.session_id}</session-id>" in xml
    assert "<username>admin</username>" in xml
    # interleave: the subscribed session still runs RPCs
    assert dns_of(listener) == ["10.10.10.53", "10.10.10.80"]
    restore(editor)
    listener.close_session()
    editor.close_session()


def test_second_subscription_and_replay_are_refused(nc):
    nc.create_subscription()
    with pytest.raises(RPCError):
        nc.create_subscription()


def test_unknown_stream_is_invalid_value(device):
    session = device.connect()
    with pytest.raises(RPCError) as caught:
        session.create_subscription(stream_name="NOPE")
    assert caught.value.tag == "invalid-value"
    session.close_session()
