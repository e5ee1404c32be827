"""The one use of aiokafka internals (agents/acls.py: ACL requests through the admin client's
private `_send_request`), pinned to the installed aiokafka: a release that moves them fails here,
and the job that uses them fails loudly instead of doing nothing."""

import aiokafka
import pytest

from alertanim.agents import acls


def test_the_installed_aiokafka_is_one_the_acl_requests_were_tested_with():
    assert aiokafka.__version__.rsplit(".", 1)[0] in acls.TESTED_AIOKAFKA, aiokafka.__version__
    create, describe = acls.private_admin_api()
    assert create.__name__.startswith("CreateAclsRequest")
    assert describe.__name__.startswith("DescribeAclsRequest")


def test_a_release_without_the_private_call_fails_loudly(monkeypatch):
    from aiokafka.admin import AIOKafkaAdminClient

    monkeypatch.delattr(AIOKafkaAdminClient, "_send_request")
    with pytest.raises(RuntimeError, match="_send_request"):
        acls.private_admin_api()
