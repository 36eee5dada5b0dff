"""
Mailman's REST API offline, as HyperKitty's own tests stub it
(hyperkitty/tests/utils.py): every call to the Mailman client raises
MailmanConnectionError, which HyperKitty handles on every page.  It owns the
stub only and must never open a network connection.
"""
import contextlib
from unittest.mock import Mock, patch

import mailmanclient


@contextlib.contextmanager
def offline_mailman():
    client = Mock()
    client.get_user.side_effect = mailmanclient.MailmanConnectionError()
    client.get_list.side_effect = mailmanclient.MailmanConnectionError()
    client.get_lists.side_effect = mailmanclient.MailmanConnectionError()
    client.get_domain.side_effect = mailmanclient.MailmanConnectionError()
    with patch("django_mailman3.lib.mailman.MailmanClient", lambda *a: client):
        yield client
